"""Per-video recommendation: keep one model's masks or the fused pseudo-label, predicted from the database.

A video is compared with the database videos by its model-independent features (standardised with the
database's mean and spread). Three predictors of each candidate's J&F are available:

- `knn`: distance-weighted mean J&F of the k nearest database videos;
- `knn+agreement`: `knn`, plus β × (the model's agreement with this video's pseudo-label − its mean
  agreement on those neighbours) for single models; β is fitted on the database by least squares. A model
  that agrees with the ensemble more than usual is probably right more than usual;
- `ridge`: per candidate, a ridge regression of J&F on the features and the candidate's agreement.

`select_method` scores each by leave-one-out on the database (the mean true J&F of what it would have
chosen) and the recommender uses the best: the choice is justified by numbers stored in the database. When
always keeping the fused pseudo-label scored higher than every predictor, the method is `KEEP_FUSED`: the
pseudo-label is kept for every video (predictions are still made by `knn`, for the record).
The chosen output is the candidate with the highest prediction; ties go to the fused pseudo-label, then
to the model listed first.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from stseg_core.errors import BadInputError
from stseg_core.fusion.features import VideoFeatures
from stseg_core.fusion.perfdb import FUSED, PerfDB, VideoRecord

METHODS = ("knn", "knn+agreement", "ridge")
KEEP_FUSED = "always-fused"
"""The method when, on the database, no per-video predictor beat keeping the pseudo-label everywhere."""
TRUST_POWERS = (1.0, 2.0, 4.0, 8.0)
"""Candidate sharpenings of historical trust (τ = (J&F/100)^γ): a larger γ lets one strong model outvote
several weaker ones whose errors are alike. The database builder keeps the γ with the best fused J&F."""
DEFAULT_K = 5


@dataclass(frozen=True)
class Recommendation:
    """The output kept for one video and why. predicted: candidate → expected J&F (0…100)."""

    video: str
    choice: str
    method: str
    predicted: dict[str, float]
    agreement: dict[str, float]
    trust: dict[str, float]
    neighbours: list[str]
    reason: str
    spans: list[dict[str, Any]] = field(default_factory=list)
    """With per-span choice: [{start, end, choice, rename}] (`choice` is then the candidate kept longest)."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _fused_agreement(agreement: dict[str, float]) -> float:
    return float(np.mean(list(agreement.values()))) if agreement else 1.0


class Recommender:
    """Predicts each candidate's J&F on a new video from a performance database."""

    def __init__(self, db: PerfDB, k: int = DEFAULT_K, method: str | None = None) -> None:
        if not db.records:
            raise BadInputError("performance database has no videos: build it from a split with ground truth first")
        method = method or db.selection.get("method", "knn+agreement")
        if method not in (*METHODS, KEEP_FUSED):
            raise BadInputError(f"unknown recommender method {method!r}; known: {', '.join((*METHODS, KEEP_FUSED))}")
        self.db, self.method, self.k = db, method, max(1, min(k, len(db.records)))
        self.predictor = "knn" if method == KEEP_FUSED else method
        self.power = float(db.selection.get("trust_power", 1.0))
        self._x = np.stack([r.features.vector() for r in db.records])
        self._mean = self._x.mean(axis=0)
        self._std = np.where(self._x.std(axis=0) > 1e-9, self._x.std(axis=0), 1.0)
        self._z = (self._x - self._mean) / self._std
        self._jf = {c: np.array([r.jf[c] for r in db.records]) for c in db.candidates}
        self._agree = {m: np.array([r.agreement.get(m, 1.0) for r in db.records]) for m in db.models}
        self._beta = self._fit_beta() if method == "knn+agreement" else 0.0
        self._ridge = self._fit_ridge() if method == "ridge" else {}

    # -- neighbours ------------------------------------------------------------------------------
    def neighbours(self, features: VideoFeatures, exclude: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Indices of the k nearest database videos and their weights (1 / (distance + 0.1), normalised)."""
        z = (features.vector() - self._mean) / self._std
        dist = np.linalg.norm(self._z - z, axis=1)
        order = sorted(range(len(dist)), key=lambda i: (round(float(dist[i]), 9), self.db.records[i].video))
        if exclude is not None:
            order.remove(exclude)
        idx = np.array(order[: self.k])
        w = 1.0 / (dist[idx] + 0.1)
        return idx, w / w.sum()

    def trust(self, features: VideoFeatures) -> dict[str, float]:
        """The fusion's historical weights: each model's expected J&F / 100 on videos like this one, raised to
        the database's `trust_power` (chosen when the database was built; 1 when absent)."""
        idx, w = self.neighbours(features)
        return {m: float(np.dot(w, self._jf[m][idx]) / 100.0) ** self.power for m in self.db.models}

    # -- fitting ---------------------------------------------------------------------------------
    def _fit_beta(self) -> float:
        num = den = 0.0
        for i, rec in enumerate(self.db.records):
            if len(self.db.records) < 2:
                continue
            idx, w = self.neighbours(rec.features, exclude=i)
            if idx.size == 0:
                continue
            for m in self.db.models:
                d = rec.agreement.get(m, 1.0) - float(np.dot(w, self._agree[m][idx]))
                num += d * (rec.jf[m] - float(np.dot(w, self._jf[m][idx])))
                den += d * d
        return num / den if den > 1e-12 else 0.0

    def _fit_ridge(self, lam: float = 1.0) -> dict[str, np.ndarray]:
        coefs = {}
        for c in self.db.candidates:
            a = (
                self._agree[c]
                if c in self._agree
                else np.array([_fused_agreement(r.agreement) for r in self.db.records])
            )
            X = np.column_stack([np.ones(len(a)), self._z, a])
            reg = lam * np.eye(X.shape[1])
            reg[0, 0] = 0.0
            coefs[c] = np.linalg.solve(X.T @ X + reg, X.T @ self._jf[c])
        return coefs

    # -- prediction ------------------------------------------------------------------------------
    def predict(self, features: VideoFeatures, agreement: dict[str, float]) -> tuple[dict[str, float], list[str]]:
        """(candidate → predicted J&F, names of the neighbours used)."""
        idx, w = self.neighbours(features)
        names = [self.db.records[i].video for i in idx]
        if self.predictor == "ridge":
            z = (features.vector() - self._mean) / self._std
            out = {}
            for c in self.db.candidates:
                a = agreement.get(c, 1.0) if c != FUSED else _fused_agreement(agreement)
                out[c] = float(np.concatenate([[1.0], z, [a]]) @ self._ridge[c])
            return out, names
        out = {c: float(np.dot(w, self._jf[c][idx])) for c in self.db.candidates}
        if self.predictor == "knn+agreement":
            for m in self.db.models:
                usual = float(np.dot(w, self._agree[m][idx]))
                out[m] += self._beta * (agreement.get(m, usual) - usual)
        return out, names

    def recommend(self, video: str, features: VideoFeatures, agreement: dict[str, float]) -> Recommendation:
        """The output to keep for `video`, with the numbers behind it."""
        predicted, names = self.predict(features, agreement)
        order = [FUSED, *self.db.models]
        choice = (
            FUSED if self.method == KEEP_FUSED else max(order, key=lambda c: (round(predicted[c], 6), -order.index(c)))
        )
        best_model = max(self.db.models, key=lambda m: (round(predicted[m], 6), -self.db.models.index(m)))
        if self.method == KEEP_FUSED:
            reason = "the database's leave-one-out: keeping the pseudo-label everywhere beat every per-video predictor"
        elif choice == FUSED:
            reason = (
                f"fused pseudo-label predicted {predicted[FUSED]:.2f} J&F ≥ best single model {best_model} "
                f"{predicted[best_model]:.2f}"
            )
        else:
            reason = (
                f"{choice} predicted {predicted[choice]:.2f} J&F > fused {predicted[FUSED]:.2f}; "
                f"its agreement with the pseudo-label {agreement.get(choice, float('nan')):.3f}"
            )
        reason += f" ({self.method}, neighbours: {', '.join(names)})"
        return Recommendation(
            video,
            choice,
            self.method,
            {c: round(v, 4) for c, v in predicted.items()},
            {m: round(v, 4) for m, v in agreement.items()},
            {m: round(v, 4) for m, v in self.trust(features).items()},
            names,
            reason,
        )


def loo_jf(db: PerfDB, method: str, k: int = DEFAULT_K) -> float:
    """Leave-one-out: for each database video, recommend from the others; mean true J&F of the choices."""
    if len(db.records) < 2:
        return float("nan")
    got = []
    for i, rec in enumerate(db.records):
        rest = replace(db, records=db.records[:i] + db.records[i + 1 :])
        choice = Recommender(rest, k=k, method=method).recommend(rec.video, rec.features, rec.agreement).choice
        got.append(rec.jf[choice])
    return float(np.mean(got))


def select_method(db: PerfDB, k: int = DEFAULT_K) -> dict[str, Any]:
    """Compare the recommenders (and fixed choices) by leave-one-out; returns the `selection` record of the db."""
    scores = {m: round(loo_jf(db, m, k), 4) for m in METHODS}
    mean = db.mean_jf()
    fixed = {
        "always-fused": round(mean[FUSED], 4),
        "always-best-model": round(max(mean[m] for m in db.models), 4) if db.models else 0.0,
        "oracle": round(float(np.mean([max(r.jf.values()) for r in db.records])), 4) if db.records else 0.0,
    }
    valid = {m: v for m, v in scores.items() if np.isfinite(v)}
    method = max(METHODS, key=lambda m: (valid.get(m, -1.0), -METHODS.index(m))) if valid else "knn"
    if valid and fixed["always-fused"] > valid[method]:
        method = KEEP_FUSED
    return {"method": method, "k": k, "loo_jf": {**scores, **fixed}}


def with_selection(db: PerfDB, k: int = DEFAULT_K, **extra: Any) -> PerfDB:
    """The database with its recommender comparison (and any `extra` selection entries) filled in."""
    return replace(db, selection={**select_method(db, k), **extra})


def record(video: str, features: VideoFeatures, jf: dict[str, float], agreement: dict[str, float]) -> VideoRecord:
    """A database row (rounded for a readable file)."""
    return VideoRecord(
        video,
        features,
        {c: round(float(v), 4) for c, v in jf.items()},
        {m: round(float(v), 4) for m, v in agreement.items()},
    )
