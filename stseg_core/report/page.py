"""The report's `index.html`: one string template, inline CSS, no script, only relative image links."""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from string import Template

from stseg_core.fusion.pgmr import DISPLAY_NAMES
from stseg_core.report.collect import RunSummary
from stseg_core.report.select import VideoRow

_PAGE = Template("""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>stseg report — $title</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em auto;max-width:1200px;padding:0 1em;color:#111}
h1{font-size:1.4em}h2{font-size:1.15em;border-bottom:1px solid #ccc;margin-top:1.6em}h3{font-size:1em}
table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #bbb;padding:2px 6px;text-align:right}
th{background:#eee}td.name,th.name{text-align:left}tr.pgmr td{font-weight:bold;background:#fff6d8}
.missing{background:#fde8e8;border:1px solid #d88;padding:.5em 1em}.note{background:#eef4ff;padding:.5em 1em}
dl.meta{display:grid;grid-template-columns:max-content auto;gap:2px 12px}dt{font-weight:bold}dd{margin:0}
.scroll{max-height:420px;overflow:auto}.closeup{margin-bottom:2em}img{max-width:100%}
</style></head>
<body>
<h1>stseg report: $title</h1>
<dl class="meta">$meta</dl>
$notes
<h2 id="table2-title">$table_title</h2>
$table
<h2>Per video: $measure, most disputed first</h2>
<img id="per-video-plot" src="$per_video_plot" alt="per-video $measure of every method">
<div class="scroll">$video_table</div>
<h2>Close-ups: worst and most disputed videos</h2>
$closeups
</body></html>
""")


@dataclass(frozen=True)
class Closeup:
    """One selected video's section: why it was picked, the recommender's word, and relative image paths."""

    video: str
    why: str
    choice: str
    reason: str
    strip: str | None
    columns: str
    frame_plot: str | None
    preview: str | None
    notes: tuple[str, ...]


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"


def _table2(run: RunSummary) -> str:
    """Every evaluated method's global row: Table 2's % (eval/table2.json) and the CSV cells, both as written."""
    columns = next(iter(run.evals.values())).columns
    has_t2 = any(ev.table2 for ev in run.evals.values())
    head = ['<th class="name">method</th>']
    if has_t2:
        head += ["<th>J&amp;F %</th>", "<th>J %</th>", "<th>F %</th>"]
    head += [f"<th>{escape(c)}</th>" for c in columns] + ['<th class="name">source</th>']
    rows = []
    for method in run.methods:
        ev = run.evals[method]
        cells = [f'<td class="name">{escape(DISPLAY_NAMES.get(method, method))}</td>']
        if has_t2:
            t2 = ev.table2 or {}
            cells += [f"<td>{escape(str(t2[k])) if k in t2 else '–'}</td>" for k in ("J&F", "J", "F")]
        cells += [f"<td>{escape(ev.cells.get(c, ''))}</td>" for c in columns]
        cells.append(f'<td class="name">eval/{escape(method)}/{escape(ev.csv_file)}</td>')
        rows.append(
            f'<tr class="{"pgmr" if method == "pgmr" else ""}" data-method="{escape(method)}">{"".join(cells)}</tr>'
        )
    return (
        f'<table id="table2"><tr>{"".join(head)}</tr>{"".join(rows)}</table>'
        "<p>Global numbers as the evaluator wrote them: % columns from <code>eval/table2.json</code>, "
        "fractions from each method's <code>global_results</code> CSV (DAVIS toolkit, mean over objects).</p>"
    )


def _agreement_table(run: RunSummary, rows: list[VideoRow]) -> str:
    """No ground truth: each model's mean agreement with the pseudo-label and how often PGMR kept it."""
    choices = [(run.recommend or {}).get("videos", {}).get(r.video, {}).get("choice") for r in rows]
    head = '<tr><th class="name">model</th><th>mean agreement %</th><th>kept for videos</th></tr>'
    body = []
    for model in (*run.models, "pgmr-fused"):
        vals = [r.values[model] for r in rows if model in r.values]
        mean = sum(vals) / len(vals) if vals else None
        shown = "reference" if model == "pgmr-fused" else _pct(mean)
        body.append(
            f'<tr data-method="{escape(model)}"><td class="name">{escape(DISPLAY_NAMES.get(model, model))}</td>'
            f"<td>{shown}</td><td>{choices.count(model)}</td></tr>"
        )
    return f'<table id="table2">{head}{"".join(body)}</table>'


def _video_table(run: RunSummary, rows: list[VideoRow], methods: list[str]) -> str:
    rec = (run.recommend or {}).get("videos", {})
    head = (
        '<tr><th class="name">video</th>'
        + "".join(f"<th>{escape(DISPLAY_NAMES.get(m, m))}</th>" for m in methods)
        + '<th>spread</th><th class="name">kept</th><th class="name">reason</th></tr>'
    )
    body = []
    for r in rows:
        entry = rec.get(r.video, {})
        body.append(
            f'<tr data-video="{escape(r.video)}"><td class="name">{escape(r.video)}</td>'
            + "".join(f"<td>{_pct(r.values.get(m))}</td>" for m in methods)
            + f'<td>{r.spread:.1f}</td><td class="name">{escape(str(entry.get("choice", "–")))}</td>'
            f'<td class="name">{escape(str(entry.get("reason", "")))}</td></tr>'
        )
    return f'<table id="videos">{head}{"".join(body)}</table>'


def _closeup(c: Closeup) -> str:
    parts = [
        f'<section class="closeup" id="video-{escape(c.video)}"><h3>{escape(c.video)} ({escape(c.why)})</h3>',
        f"<p>Kept: <b>{escape(c.choice)}</b> — {escape(c.reason)}</p>",
    ]
    parts += [f'<p class="note">{escape(n)}</p>' for n in c.notes]
    if c.strip:
        parts.append(
            f"<p>Frames {escape(c.columns)}; rows: frame, ground truth where it exists, each model, "
            f'PGMR.</p><img class="overlay" src="{escape(c.strip)}" alt="mask overlays of {escape(c.video)}">'
        )
    if c.frame_plot:
        parts.append(f'<img class="frame-plot" src="{escape(c.frame_plot)}" alt="per-frame scores">')
    if c.preview:
        parts.append(f'<p>PGMR output:</p><img class="preview" src="{escape(c.preview)}" alt="PGMR preview">')
    return "".join(parts) + "</section>"


def render(
    run: RunSummary, meta: dict[str, str], rows: list[VideoRow], methods: list[str], plot: str, closeups: list[Closeup]
) -> str:
    """The whole page."""
    notes = []
    if run.missing:
        items = "".join(f"<li>{escape(m)}</li>" for m in run.missing)
        notes.append(f'<div class="missing" id="missing"><b>Missing from this run:</b><ul>{items}</ul></div>')
    if not run.has_gt:
        notes.append(
            '<p class="note" id="no-gt">No ground truth: every number below is a model\'s agreement '
            "with the PGMR pseudo-label (%), not J&amp;F.</p>"
        )
    measure = "J&F %" if run.has_gt else "agreement with the pseudo-label %"
    return _PAGE.substitute(
        title=escape(run.root),
        meta="".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in meta.items()),
        notes="".join(notes),
        table_title="Table 2: J&amp;F per method" if run.has_gt else "Agreement with the pseudo-label per model",
        table=_table2(run) if run.has_gt else _agreement_table(run, rows),
        measure=escape(measure),
        per_video_plot=escape(plot),
        video_table=_video_table(run, rows, methods),
        closeups="".join(_closeup(c) for c in closeups) or "<p>No video selected.</p>",
    )
