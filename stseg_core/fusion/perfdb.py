"""The model performance database: per video of a split with ground truth, its features and every output's J&F.

Stored as JSON in a store, one immutable file per version: `<prefix>/v0001.json`, `v0002.json`, … plus a
`<prefix>/latest` text file naming the newest, so a run can record exactly which database it used.
"""

from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from stseg_core.errors import BadInputError
from stseg_core.fusion.calibrate import Calibration
from stseg_core.fusion.features import VideoFeatures
from stseg_core.store import Store, open_store

SCHEMA = 1
_VERSION = re.compile(r"v(\d{4,})\.json")
FUSED = "pgmr-fused"
"""Candidate name of the fused pseudo-label, next to the model names."""


@dataclass(frozen=True)
class VideoRecord:
    """One database video: features, J&F (0…100) per candidate (models and FUSED), agreement (0…1) per model."""

    video: str
    features: VideoFeatures
    jf: dict[str, float]
    agreement: dict[str, float]

    def to_json(self) -> dict[str, Any]:
        return {"video": self.video, "features": self.features.to_json(), "jf": self.jf, "agreement": self.agreement}

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> VideoRecord:
        return cls(obj["video"], VideoFeatures.from_json(obj["features"]), dict(obj["jf"]), dict(obj["agreement"]))


@dataclass(frozen=True)
class PerfDB:
    """models: the models every record scores; source: where the ground truth came from; selection: the
    leave-one-out comparison of recommenders (see `stseg_core.fusion.recommend.select_method`); calibration:
    per model, its confidence → per-frame accuracy map (`stseg_core.fusion.calibrate`; absent = identity)."""

    models: tuple[str, ...]
    records: tuple[VideoRecord, ...]
    source: str = ""
    created: str = ""
    version: int = 0
    selection: dict[str, Any] = field(default_factory=dict)
    calibration: dict[str, Calibration] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for rec in self.records:
            missing = [c for c in (*self.models, FUSED) if c not in rec.jf]
            if missing:
                raise BadInputError(f"performance database: video {rec.video} has no J&F for {', '.join(missing)}")

    @property
    def candidates(self) -> tuple[str, ...]:
        return (*self.models, FUSED)

    def mean_jf(self) -> dict[str, float]:
        """Mean J&F per candidate over the database's videos."""
        return {c: float(np.mean([r.jf[c] for r in self.records])) if self.records else 0.0 for c in self.candidates}

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "models": list(self.models),
            "source": self.source,
            "created": self.created,
            "version": self.version,
            "selection": self.selection,
            "calibration": {m: c.to_json() for m, c in self.calibration.items()},
            "records": [r.to_json() for r in self.records],
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any], where: str = "<json>") -> PerfDB:
        if not isinstance(obj, dict) or obj.get("schema") != SCHEMA:
            got = obj.get("schema") if isinstance(obj, dict) else type(obj).__name__
            raise BadInputError(f"{where}: not a performance database of schema {SCHEMA} (schema {got})")
        try:
            return cls(
                tuple(obj["models"]),
                tuple(VideoRecord.from_json(r) for r in obj["records"]),
                obj.get("source", ""),
                obj.get("created", ""),
                int(obj.get("version", 0)),
                dict(obj.get("selection", {})),
                {m: Calibration.from_json(c) for m, c in obj.get("calibration", {}).items()},
            )
        except (KeyError, TypeError) as err:
            raise BadInputError(f"{where}: malformed performance database ({err!r})") from None


def save_perfdb(store: Store, db: PerfDB, prefix: str = "perfdb") -> str:
    """Write `db` as the next version under `prefix` and point `latest` at it; returns the version's URI."""
    folder = store.child(prefix) if prefix else store
    versions = [int(m.group(1)) for k in folder.list() if "/" not in k and (m := _VERSION.fullmatch(k))]
    version = max(versions, default=0) + 1
    name = f"v{version:04d}.json"
    created = db.created or _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    folder.write_json(name, replace(db, version=version, created=created).to_json())
    folder.write_text("latest", name + "\n")
    return folder.uri(name)


def load_perfdb(uri: str) -> PerfDB:
    """A database from a version file URI (`…/v0002.json`) or its folder (reads the version `latest` names)."""
    uri = str(uri).rstrip("/")
    if uri.endswith(".json"):
        folder, name = uri.rsplit("/", 1) if "/" in uri else (".", uri)
        store = open_store(folder)
    else:
        store = open_store(uri)
        name = store.read_text("latest").strip()
    return PerfDB.from_json(store.read_json(name), store.uri(name))


def render(db: PerfDB) -> str:
    """A person-readable summary: provenance, mean J&F per candidate, the recommender comparison, per-video rows."""
    lines = [
        f"performance database v{db.version} (schema {SCHEMA}), created {db.created or '?'}",
        f"source: {db.source or '?'}",
        f"videos: {len(db.records)}; models: {', '.join(db.models)}",
        "",
    ]
    mean = db.mean_jf()
    lines.append("mean J&F per output: " + ", ".join(f"{c} {mean[c]:.2f}" for c in db.candidates))
    sel = db.selection
    if sel:
        lines.append(
            f"recommender: {sel.get('method')} (leave-one-out mean J&F of the chosen output per method: "
            + ", ".join(f"{m} {v:.2f}" for m, v in sel.get("loo_jf", {}).items())
            + ")"
        )
    if "trust_power" in sel:
        lines.append(
            f"trust sharpening γ = {sel['trust_power']:g} (mean fused J&F per γ, leave-one-out trust: "
            + ", ".join(f"γ={g} {v:.2f}" for g, v in sel.get("fused_jf_by_trust_power", {}).items())
            + ")"
        )
    if db.calibration:
        lines.append(
            "confidence calibration (confidence → mean per-frame IoU at 0.25 / 0.5 / 0.75 / 1): "
            + "; ".join(
                f"{m} "
                + ("identity" if c.identity else " ".join(f"{v:.2f}" for v in c(np.array([0.25, 0.5, 0.75, 1.0]))))
                + f" ({c.pairs} pairs)"
                for m, c in db.calibration.items()
            )
        )
    lines.append("")
    cols = [*db.candidates]
    head = f"{'video':<24}{'objs':>5}{'edges':>7}{'motion':>8}{'disagr':>8}  " + "".join(f"{c[:12]:>13}" for c in cols)
    lines.append(head)
    for r in db.records:
        f = r.features
        row = f"{r.video[:23]:<24}{f.num_objects:>5}{f.edge_density:>7.3f}{f.motion:>8.4f}{f.disagreement:>8.3f}  "
        lines.append(row + "".join(f"{r.jf[c]:>13.2f}" for c in cols))
    return "\n".join(lines)
