"""Self-contained HTML report pages: a run folder (run.py), a search folder (search.py), a folder of runs
(folder.py), on the shared page skeleton (page.py). `dltrain report` (commands/report.py) writes them.

Not named `report`: `dltrain.report` is the API function (as `dltrain.search` is, beside tuning.py)."""
