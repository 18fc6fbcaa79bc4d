"""The report of a folder of runs: a sortable, filterable table (the columns of `dltrain runs`), the
cost curves of the runs ticked in it drawn over each other, links to each run's report."""

import os
from pathlib import Path

from dltrain.errors import DltrainError
from dltrain.pages.page import cell, esc, json_script, page, section, table, thin
from dltrain.runs import load_run

# Curves per run kept in the page: few enough points that 200 runs stay a small page.
CURVE_POINTS = 300
# Ticked when the page opens: the best runs by dev (else train) accuracy.
FIRST_TICKED = 6

# Draws the ticked runs' train cost (solid) and dev cost (dashed) into the <svg id="overlay">, with
# axes and a legend; text goes in through textContent, never as markup.
OVERLAY_SCRIPT = """
var curves=JSON.parse(document.getElementById('curves').textContent),NS='http://www.w3.org/2000/svg';
var COLORS=['#1f77b4','#ff7f0e','#2ca02c','#d62728','#9467bd','#8c564b','#e377c2','#7f7f7f','#bcbd22','#17becf'];
function el(name,attrs,parent){var e=document.createElementNS(NS,name);for(var k in attrs)e.setAttribute(k,attrs[k]);parent.appendChild(e);return e;}
function ticks(lo,hi){var step=Math.pow(10,Math.floor(Math.log10((hi-lo)/4||1)));while((hi-lo)/step>8)step*=2;var t=[];
for(var v=Math.ceil(lo/step)*step;v<=hi+1e-12;v+=step)t.push(+v.toPrecision(6));return t;}
function drawOverlay(){var svg=document.getElementById('overlay'),legend=document.getElementById('legend');
while(svg.firstChild)svg.removeChild(svg.firstChild);legend.textContent='';
var picked=Array.prototype.filter.call(document.querySelectorAll('input.pick'),function(b){return b.checked&&curves[b.getAttribute('data-run')];})
.map(function(b){return b.getAttribute('data-run');});
var W=760,H=360,L=60,R=16,T=12,B=40,x0=Infinity,x1=-Infinity,y0=Infinity,y1=-Infinity;
picked.forEach(function(run){var c=curves[run];c.epoch.forEach(function(e,i){[c.cost[i],c.dev_cost[i]].forEach(function(v){
if(v===null)return;x0=Math.min(x0,e);x1=Math.max(x1,e);y0=Math.min(y0,v);y1=Math.max(y1,v);});});});
if(!picked.length||!isFinite(x0)){el('text',{x:W/2,y:H/2,'text-anchor':'middle',fill:'#667'},svg)
.textContent='tick runs in the table to draw their cost curves';return;}
if(x1===x0)x1=x0+1;if(y1===y0)y1=y0+1;y0=Math.min(y0,0);
function X(v){return L+(v-x0)/(x1-x0)*(W-L-R);}function Y(v){return H-B-(v-y0)/(y1-y0)*(H-T-B);}
ticks(y0,y1).forEach(function(v){el('line',{x1:L,x2:W-R,y1:Y(v),y2:Y(v),stroke:'#e3e6ea'},svg);
el('text',{x:L-6,y:Y(v)+4,'text-anchor':'end','font-size':11,fill:'#445'},svg).textContent=v;});
ticks(x0,x1).forEach(function(v){el('text',{x:X(v),y:H-B+16,'text-anchor':'middle','font-size':11,fill:'#445'},svg).textContent=v;});
el('rect',{x:L,y:T,width:W-L-R,height:H-T-B,fill:'none',stroke:'#99a'},svg);
el('text',{x:(L+W-R)/2,y:H-6,'text-anchor':'middle','font-size':12},svg).textContent='epoch';
el('text',{x:14,y:(T+H-B)/2,'text-anchor':'middle','font-size':12,transform:'rotate(-90 14 '+(T+H-B)/2+')'},svg).textContent='cost';
picked.forEach(function(run,k){var c=curves[run],color=COLORS[k%COLORS.length];
['cost','dev_cost'].forEach(function(key){var pts=[];c.epoch.forEach(function(e,i){if(c[key][i]!==null)pts.push(X(e).toFixed(1)+','+Y(c[key][i]).toFixed(1));});
if(pts.length)el('polyline',{points:pts.join(' '),fill:'none',stroke:color,'stroke-width':1.6,'stroke-dasharray':key==='dev_cost'?'5 3':''},svg);});
var item=document.createElement('span'),sw=document.createElement('span');sw.className='sw';sw.style.background=color;
item.appendChild(sw);item.appendChild(document.createTextNode(run));legend.appendChild(item);});}
document.querySelectorAll('input.pick').forEach(function(b){b.addEventListener('change',drawOverlay);});drawOverlay();
"""


def curve_data(run_dir: Path) -> dict | None:
    """epoch, cost and dev_cost lists of a run's history (thinned), or None without one."""
    try:
        rows = thin(load_run(run_dir).history, CURVE_POINTS)
    except DltrainError:
        return None
    if not rows:
        return None
    return {"epoch": [r["epoch"] for r in rows], "cost": [r.get("cost") for r in rows], "dev_cost": [r.get("dev_cost") for r in rows]}


def link(target: Path, base: Path) -> str:
    """target as a link relative to the folder the page is written into."""
    return Path(os.path.relpath(target.resolve(), base.resolve())).as_posix()


def folder_page(runs_dir: Path, rows: list[dict], out_dir: Path | None = None) -> str:
    """The HTML report of runs_dir; rows: run_table(runs_dir); out_dir: where the page goes (for its links)."""
    runs_dir = Path(runs_dir)
    out_dir = Path(out_dir) if out_dir is not None else runs_dir
    columns = list(rows[0]) if rows else ["run"]
    ranked = sorted((r for r in rows if isinstance(r.get("dev_accuracy") or r.get("train_accuracy"), (int, float))),
                    key=lambda r: -(r.get("dev_accuracy") or r.get("train_accuracy")))
    ticked = {r["run"] for r in ranked[:FIRST_TICKED]}
    curves, body_rows = {}, []
    for r in rows:
        run_dir = runs_dir / r["run"]
        data = curve_data(run_dir)
        if data is not None:
            curves[r["run"]] = data
        report = run_dir / "report.html"
        pick = (f'<td><input type="checkbox" class="pick" data-run="{esc(r["run"])}"'
                f'{" checked" if r["run"] in ticked else ""}{"" if data else " disabled"}></td>')
        # A very long name is cut with an ellipsis on screen (the whole name is the cell's tooltip and text).
        cells = [cell(r["run"], link(report, out_dir) if report.is_file() else None).replace("<td>", f'<td class="name" title="{esc(r["run"])}">', 1)]
        cells += [cell(r[c]) if not isinstance(r[c], (list, dict)) else f"<td>{esc(str(r[c]))}</td>" for c in columns[1:]]
        body_rows.append([pick, *cells])
    n = len(rows)
    table_html = ('<input class="filter" data-table="runs" placeholder="filter rows: type any text">'
                  + table(["draw", *columns], body_rows, "runs", sortable=True)
                  + '<p class="muted">Click a column header to sort; a run\'s name opens its report.</p>')
    overlay = ('<svg id="overlay" width="760" height="360" viewBox="0 0 760 360" role="img" aria-label="cost curves"></svg>'
               '<div id="legend" class="legend"></div><p class="muted">Train cost solid, dev cost dashed; tick runs in the table to add them.</p>')
    body = (section(f"Runs ({n})", table_html, "table") + section("Cost curves of the ticked runs", overlay, "overlay-section")
            + json_script("curves", curves))
    return page(f"runs in {runs_dir.resolve().name}", esc(f"{runs_dir} · {n} runs"), body, OVERLAY_SCRIPT)
