"""Read what a run wrote (eval/, recommend.json, pred/, fused/) into one summary the report renders as written."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from typing import Any

from stseg_core.errors import BadInputError, MissingArtifactError
from stseg_core.fusion.pgmr import DERIVED, PGMR
from stseg_core.runlayout import DoneMarker
from stseg_core.store import Store, join_key


@dataclass(frozen=True)
class MethodEval:
    """One `eval/<method>/`: the global CSV row as text (`columns` → cell, e.g. "0.901"), its results.json
    (global scores and per-video `scores`/`objects`/`frames`), and the Table 2 row (J&F/J/F in %) if any."""

    method: str
    csv_file: str
    columns: tuple[str, ...]
    cells: dict[str, str]
    results: dict[str, Any]
    table2: dict[str, float] | None

    def video_jf(self, video: str) -> float | None:
        """Per-video J&F (0…1) exactly as results.json holds it; None where the video was not scored."""
        entry = self.results.get("videos", {}).get(video)
        return None if entry is None else entry["scores"].get("J&F")


@dataclass(frozen=True)
class RunSummary:
    """Everything the page shows. `methods`: evaluated methods in display order (models, baselines, vote, PGMR);
    `models`: the fused models (those with masks under pred/); `has_gt`: eval/ exists; `missing`: one line per
    artifact the page lacks and what that leaves out."""

    root: str
    models: tuple[str, ...]
    methods: tuple[str, ...]
    evals: dict[str, MethodEval]
    recommend: dict[str, Any] | None
    videos: tuple[str, ...]
    split: str
    gt_root: str | None
    pred_models: tuple[str, ...]
    has_fused: bool
    checkpoints: dict[str, str]
    missing: list[str] = field(default_factory=list)

    @property
    def has_gt(self) -> bool:
        return bool(self.evals)

    def mask_sources(self) -> list[tuple[str, str]]:
        """(label, key prefix) of every mask set the run holds: each model's pred/, then PGMR's fused/."""
        out = [(m, join_key("pred", m)) for m in self.models if m in self.pred_models]
        return out + ([(PGMR, "fused")] if self.has_fused else [])


def _read_json(store: Store, key: str) -> Any:
    try:
        return store.read_json(key)
    except ValueError as err:
        raise BadInputError(f"{store.uri(key)}: not valid JSON ({err})") from None


def _global_csv(store: Store, key: str) -> tuple[tuple[str, ...], dict[str, str]]:
    rows = list(csv.reader(io.StringIO(store.read_text(key))))
    if len(rows) < 2 or len(rows[0]) != len(rows[1]):
        raise BadInputError(f"{store.uri(key)}: expected a header row and one value row")
    return tuple(rows[0]), dict(zip(rows[0], rows[1], strict=True))


def _method_order(names: list[str], models: tuple[str, ...]) -> tuple[str, ...]:
    rank = {m: i for i, m in enumerate((*models, *DERIVED))}
    return tuple(sorted(names, key=lambda n: (rank.get(n, len(rank)), n)))


def _evals(store: Store, keys: list[str], table2: dict[str, dict[str, float]]) -> dict[str, MethodEval]:
    out = {}
    methods = sorted({k.split("/")[1] for k in keys if k.count("/") == 2 and k.endswith("/results.json")})
    for method in methods:
        csvs = [k for k in keys if k.startswith(f"eval/{method}/global_results-") and k.endswith(".csv")]
        if not csvs:
            raise MissingArtifactError(f"{store.uri(f'eval/{method}')}: results.json without global_results-*.csv")
        columns, cells = _global_csv(store, csvs[0])
        out[method] = MethodEval(
            method,
            csvs[0].rsplit("/", 1)[-1],
            columns,
            cells,
            _read_json(store, f"eval/{method}/results.json"),
            table2.get(method),
        )
    return out


def _checkpoints(store: Store, keys: list[str], model: str) -> str:
    """The checkpoint (or model overrides) the infer shards recorded in their done markers."""
    seen = []
    for key in keys:
        if key.startswith(f"pred/{model}/_done/") and key.endswith(".json"):
            overrides = DoneMarker.from_json(_read_json(store, key), store.uri(key)).meta.get("overrides") or {}
            text = overrides.get("checkpoint") or ", ".join(f"{k}={v}" for k, v in sorted(overrides.items()))
            if text and text not in seen:
                seen.append(text)
    return "; ".join(seen) or "default (no override recorded)"


def collect_run(store: Store) -> RunSummary:
    """Read a run. Fails (one line) only when it holds neither eval/ nor recommend.json: nothing to report."""
    keys = store.list()
    recommend = _read_json(store, "recommend.json") if "recommend.json" in keys else None
    table2_doc = _read_json(store, "eval/table2.json") if "eval/table2.json" in keys else {}
    evals = _evals(store, [k for k in keys if k.startswith("eval/")], table2_doc.get("table", {}))
    if recommend is None and not evals:
        raise MissingArtifactError(
            f"{store.uri()}: no eval/<method>/results.json and no recommend.json — "
            "nothing to report (run `stseg fuse`, and `stseg eval` with ground truth)"
        )
    pred_models = tuple(sorted({k.split("/")[1] for k in keys if k.startswith("pred/") and k.count("/") >= 3}))
    if recommend is not None:
        models = tuple(recommend.get("models", ()))
    else:
        models = tuple(m for m in evals if m not in DERIVED)
    has_fused = any(k.startswith("fused/") for k in keys)
    missing = _missing(evals, recommend, models, pred_models, has_fused)
    models = tuple(dict.fromkeys((*models, *(m for m in evals if m not in DERIVED))))
    videos = set(recommend.get("videos", {}) if recommend else ())
    for ev in evals.values():
        videos |= set(ev.results.get("videos", {}))
    first = next(iter(evals.values()), None)
    split = first.results.get("split", "") if first else ""
    gt_root = (first.results.get("gt_root") if first else None) or table2_doc.get("gt_root")
    return RunSummary(
        store.uri(),
        models,
        _method_order(list(evals), models),
        evals,
        recommend,
        tuple(sorted(videos)),
        split,
        gt_root,
        pred_models,
        has_fused,
        {m: _checkpoints(store, keys, m) for m in models},
        missing,
    )


def _missing(
    evals: dict[str, MethodEval],
    recommend: dict[str, Any] | None,
    models: tuple[str, ...],
    pred_models: tuple[str, ...],
    has_fused: bool,
) -> list[str]:
    """One line per artifact the run lacks and what the page leaves out for it (the page says so, not a blank)."""
    missing: list[str] = []
    if not evals:
        missing.append(
            "eval/: no J&F results (no ground truth, e.g. a test split) — the page shows each model's "
            "agreement with the PGMR pseudo-label instead of J&F"
        )
    elif PGMR not in evals:
        missing.append(
            f"eval/{PGMR}/: no J&F of the PGMR output — Table 2 has no PGMR row (score fused/ with "
            "`stseg eval`, or fuse with --gt)"
        )
    if recommend is None:
        missing.append("recommend.json: the fuse stage has not run — no per-video choice, reasons or PGMR masks")
    for method in evals:
        if method not in DERIVED and method not in pred_models:
            missing.append(
                f"pred/{method}/: eval/ scores model {method} but the run holds none of its masks — no overlays for it"
            )
    for model in models:
        if model not in pred_models and model not in evals:
            missing.append(f"pred/{model}/: recommend.json names model {model} but the run holds none of its masks")
    if recommend is not None and not has_fused:
        missing.append("fused/: no PGMR masks — no PGMR overlay or preview")
    return missing
