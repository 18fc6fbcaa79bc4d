"""The report of a search folder: the leaderboard, the dev metric against each hyperparameter, the best config, links to the trials."""

import os
from pathlib import Path

from dltrain import plots, tuning
from dltrain.config import load_space
from dltrain.errors import DltrainError
from dltrain.pages.page import cell, esc, figure, key_values, page, section, svg, table
from dltrain.runs import read_json_file


def trial_records(search_dir: Path) -> list[dict]:
    """The trial-NNN.json records of the search's finished trials."""
    records = []
    for path in sorted((search_dir / "trials").glob("trial-*.json")):
        r = read_json_file(path)
        if isinstance(r, dict) and isinstance(r.get("trial"), int) and isinstance(r.get("values"), dict):
            r.setdefault("metrics", {})
            records.append(r)
    return records


def scatter_section(done: list[dict], space: dict, metric: str) -> str:
    if not done or not space:
        return section("Hyperparameters against the dev metric", '<p class="muted">No completed trial yet.</p>', "scatter")
    try:
        scales = {key: tuning.plot_scale(d) for key, d in load_space(space).items()}
    except DltrainError:  # a hand-edited search.json: draw every axis linear rather than no figure
        scales = dict.fromkeys(space, "linear")
    scales = {k: v for k, v in scales.items() if all(k in r["values"] for r in done)}
    if not scales:
        return ""
    fig = plots.search_scatter(done, scales, metric)
    caption = f"{metric} of each completed trial against each searched value (log axes for log-scaled ranges; color: round)"
    return section("Hyperparameters against the dev metric", f'<div class="figs">{figure(svg(fig), caption)}</div>', "scatter")


def leaderboard_section(search_dir: Path, ranked: list[dict], keys: list[str], out_dir: Path) -> str:
    columns = ["rank", "trial", "round", "status", *tuning.METRIC_COLUMNS, *keys, "epochs_run", "seconds", "error"]
    rows, place = [], 0
    for r in ranked:
        place += r["status"] == "completed"
        name = f"trial-{r['trial']:03d}"
        report = search_dir / "trials" / name / "report.html"
        href = Path(os.path.relpath(report.resolve(), out_dir.resolve())).as_posix() if report.is_file() else None
        values = [place if r["status"] == "completed" else None, r["trial"], r.get("round"), r["status"],
                  *(r["metrics"].get(c) for c in tuning.METRIC_COLUMNS), *(r["values"].get(k) for k in keys),
                  r.get("epochs_run"), r.get("seconds"), r.get("error")]
        cells = [cell(v) for v in values]
        cells[1] = cell(r["trial"], href)
        rows.append(cells)
    return section(f"Leaderboard ({len(ranked)} trials)",
                   '<input class="filter" data-table="leaderboard" placeholder="filter rows: type any text">'
                   + table(columns, rows, "leaderboard", sortable=True)
                   + '<p class="muted">Best first; click a header to sort; a trial number opens that trial\'s report.</p>',
                   "leaderboard")


def search_page(search_dir: Path, out_dir: Path | None = None) -> str:
    """The HTML report of a search folder (search.json, trials/trial-NNN.json, best.yaml, rounds.json)."""
    search_dir = Path(search_dir)
    out_dir = Path(out_dir) if out_dir is not None else search_dir
    spec = read_json_file(search_dir / "search.json")
    if not isinstance(spec, dict):
        raise DltrainError(f"{search_dir / 'search.json'} is not a readable search description")
    metric = spec.get("metric") if spec.get("metric") in tuning.METRICS else "dev_accuracy"
    space = spec.get("space") if isinstance(spec.get("space"), dict) else {}
    records = trial_records(search_dir)
    ranked = tuning.rank(records, metric) if all("dev_accuracy" in r["metrics"] for r in records if r.get("status") == "completed") else records
    done = [r for r in ranked if r.get("status") == "completed"]
    keys = list(space)
    facts = key_values([("ranked by", metric), ("trials finished", f"{len(records)} of {spec.get('trials')}"),
                        ("completed", len(done)), ("rounds", spec.get("rounds")), ("seed", spec.get("seed"))])
    rounds = read_json_file(search_dir / "rounds.json")
    space_rows = []
    for entry in rounds if isinstance(rounds, list) else [{"round": 1, "space": space}]:
        if isinstance(entry, dict) and isinstance(entry.get("space"), dict):
            space_rows += [[cell(entry.get("round")), f"<td>{esc(k)}</td>", f"<td>{esc(str(v))}</td>"] for k, v in entry["space"].items()]
    best = ""
    if (search_dir / "best.yaml").is_file():
        best = section("Best config (best.yaml)", f"<pre>{esc((search_dir / 'best.yaml').read_text())}</pre>", "best")
    top = ""
    if done:
        b = done[0]
        top = f"<p>Best: trial {esc(b['trial'])} (round {esc(b.get('round'))}), {esc(metric)} {esc(b['metrics'].get(metric))}.</p>"
    body = (section("Search", top + facts + "<h3>Space searched, per round</h3>" + table(["round", "key", "distribution"], space_rows), "search")
            + scatter_section(done, space, metric) + leaderboard_section(search_dir, ranked, keys, out_dir) + best)
    return page(f"search {search_dir.resolve().name}", esc(f"{search_dir} · {len(records)} trials"), body)
