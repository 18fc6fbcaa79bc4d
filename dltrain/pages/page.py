"""The pieces every report page shares: the HTML skeleton with its inline CSS and script, escaping,
tables, inline figures.

A page is one self-contained file: figures are inline SVG (or PNG data URIs for the run folder's
raster plots), style and script are inline, and a Content-Security-Policy forbids every request,
so the browser fetches nothing even if a value slipped through unescaped. Every value that comes
from a run folder goes through `esc` (text and attributes) or `json_script` (data for the script).
"""

import base64
import html
import io
import json
import math

from dltrain import __version__

# Nothing may be fetched: no network, no file, no frame; only inline style, inline script and data: images.
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'"

# A long history is thinned to at most this many rows before it is drawn: a 30,000-epoch run keeps
# the page small (about 50 bytes of SVG path per point and series) and loses nothing visible at
# the width a figure is shown.
MAX_POINTS = 1500

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
header{background:#1f3a5f;color:#fff;padding:14px 24px}header h1{margin:0;font-size:20px;overflow-wrap:anywhere}
header p{margin:4px 0 0;opacity:.85;overflow-wrap:anywhere}main{padding:8px 24px 40px;max-width:1480px}
section{background:#fff;border:1px solid #dde1e7;border-radius:6px;padding:10px 16px 14px;margin:14px 0}
h2{font-size:16px;margin:4px 0 10px;color:#1f3a5f}h3{font-size:14px;margin:12px 0 6px}
table{border-collapse:collapse;margin:4px 0;font-variant-numeric:tabular-nums;font-size:13px}
th,td{border-bottom:1px solid #e6e9ee;padding:3px 8px;text-align:left;vertical-align:top;overflow-wrap:break-word}
td{max-width:480px}th{background:#eef1f5;font-weight:600;white-space:nowrap}td.num{text-align:right;white-space:nowrap}
table.sortable th{cursor:pointer;user-select:none}table.sortable th:after{content:" \\2195";color:#9aa3b0}
table.sortable th.asc:after{content:" \\25B2";color:#1f3a5f}table.sortable th.desc:after{content:" \\25BC";color:#1f3a5f}
.scroll{overflow-x:auto}pre{background:#f3f5f8;padding:8px 10px;border-radius:4px;overflow:auto;max-height:420px;margin:4px 0}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600;background:#ccc;color:#000}
.completed{background:#c9f0d3}.interrupted,.running{background:#fff0b3}.diverged,.failed{background:#ffd0d0}
.figs{display:flex;flex-wrap:wrap;gap:12px}.figs figure{margin:0;max-width:100%}
.figs svg,.figs img{max-width:100%;height:auto;display:block}figcaption{font-size:12px;color:#566}
.kv th{width:190px;background:none}.muted{color:#667}input.filter{padding:4px 8px;width:260px;margin:4px 0}
ul.recipe{margin:4px 0}#overlay{background:#fff;border:1px solid #dde1e7}.legend span{margin-right:14px;white-space:nowrap}
.row{display:grid;grid-template-columns:repeat(auto-fit,minmax(330px,1fr));gap:0 14px;align-items:start}
td.name{white-space:nowrap;overflow:hidden;text-overflow:ellipsis;max-width:340px}
.sw{display:inline-block;width:14px;height:3px;vertical-align:middle;margin-right:4px}
"""

# Sorting (click a header; numbers as numbers, blanks last) and filtering (rows containing the typed text).
SCRIPT = """
function cellValue(td){var v=td.getAttribute('data-v');return v===null?td.textContent:v;}
function sortTable(th){var table=th.closest('table'),i=Array.prototype.indexOf.call(th.parentNode.children,th);
var asc=!th.classList.contains('asc');table.querySelectorAll('th').forEach(function(h){h.classList.remove('asc','desc');});
th.classList.add(asc?'asc':'desc');var body=table.tBodies[0],rows=Array.prototype.slice.call(body.rows);
rows.sort(function(a,b){var x=cellValue(a.cells[i]),y=cellValue(b.cells[i]);if(x===''&&y==='')return 0;if(x==='')return 1;if(y==='')return -1;
var nx=Number(x),ny=Number(y),r=(!isNaN(nx)&&!isNaN(ny))?nx-ny:x.localeCompare(y);return asc?r:-r;});
rows.forEach(function(r){body.appendChild(r);});}
document.querySelectorAll('table.sortable th').forEach(function(th){th.addEventListener('click',function(){sortTable(th);});});
document.querySelectorAll('input.filter').forEach(function(input){input.addEventListener('input',function(){
var q=input.value.toLowerCase(),table=document.getElementById(input.getAttribute('data-table'));
Array.prototype.forEach.call(table.tBodies[0].rows,function(r){r.style.display=r.textContent.toLowerCase().indexOf(q)<0?'none':'';});});});
"""


def esc(value) -> str:
    """Any value as HTML text, quotes included (safe in text and in quoted attributes)."""
    return html.escape(value if isinstance(value, str) else fmt(value), quote=True)


def fmt(value) -> str:
    """Numbers to 4 significant digits (integers whole), None as '', lists joined, the rest as str."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(fmt(v) for v in value) + "]"
    return str(value)


def pct(value) -> str:
    return "" if not isinstance(value, (int, float)) else f"{100 * value:.2f}%"


def cell(value, link: str | None = None) -> str:
    """A td: numbers right-aligned and sorted by their exact value (data-v)."""
    text = esc(value)
    if link is not None:
        text = f'<a href="{esc(link)}">{text}</a>'
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f'<td class="num" data-v="{esc(repr(value))}">{text}</td>'
    return f"<td>{text}</td>"


def table(columns: list[str], rows: list[list[str]], table_id: str | None = None, sortable: bool = False) -> str:
    """columns: header texts (escaped here); rows: lists of ready <td> strings (see cell)."""
    attrs = (f' id="{esc(table_id)}"' if table_id else "") + (' class="sortable"' if sortable else "")
    head = "".join(f"<th>{esc(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(r) + "</tr>" for r in rows)
    return f'<div class="scroll"><table{attrs}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def key_values(pairs: list[tuple[str, object]]) -> str:
    """A two-column table of label -> value, leaving out empty values."""
    rows = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in pairs if v not in (None, "", [], {}))
    return f'<table class="kv">{rows}</table>'


def section(title: str, body: str, section_id: str = "") -> str:
    return f'<section id="{esc(section_id)}"><h2>{esc(title)}</h2>{body}</section>'


def svg(fig) -> str:
    """A matplotlib Figure as inline SVG markup (the XML prolog and DOCTYPE dropped); the figure is closed."""
    buf = io.StringIO()
    fig.savefig(buf, format="svg")
    text = buf.getvalue()
    return text[text.index("<svg"):]


def figure(markup: str, caption: str) -> str:
    return f"<figure>{markup}<figcaption>{esc(caption)}</figcaption></figure>"


def png_img(data: bytes, alt: str) -> str:
    return f'<img alt="{esc(alt)}" src="data:image/png;base64,{base64.b64encode(data).decode()}">'


def thin(rows: list[dict], limit: int = MAX_POINTS) -> list[dict]:
    """At most about `limit` evenly spaced rows, the first and the last always kept."""
    if len(rows) <= limit:
        return rows
    step = math.ceil(len(rows) / limit)
    kept = rows[::step]
    return kept if kept[-1] is rows[-1] else [*kept, rows[-1]]


def _finite(obj):
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {str(k): _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def json_script(element_id: str, obj) -> str:
    """Data for the page's script: JSON that cannot end its <script> element (<, >, & as \\u escapes)."""
    text = json.dumps(_finite(obj)).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return f'<script type="application/json" id="{esc(element_id)}">{text}</script>'


def page(title: str, subtitle: str, body: str, extra_script: str = "") -> str:
    """The whole HTML document."""
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body>"
        f"<header><h1>{esc(title)}</h1><p>{subtitle}</p></header><main>{body}"
        f'<p class="muted">Written by dltrain {esc(__version__)} report: one file, no network.</p></main>'
        f"<script>{SCRIPT}{extra_script}</script></body></html>\n"
    )


def blas_name() -> str:
    """NumPy's BLAS as its build reports it ("scipy-openblas 0.3.27"), or '' when it does not say."""
    try:
        import numpy as np

        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return f"{blas.get('name', '')} {blas.get('version', '')}".strip()
    except Exception:  # older NumPy builds have no dict form; the report just leaves the line out
        return ""
