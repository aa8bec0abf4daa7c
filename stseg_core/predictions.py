"""A model's (or the fusion's) per-video outputs in the store: palette PNG per frame, scores.json, probs.npz.

Layout under a prefix (`pred/<model>` or `fused`), see docs/ARCHITECTURE.md::

    <prefix>/<video>/<stem>.png   H×W palette PNG, pixel = object id
    <prefix>/<video>/scores.json  {"model", "video", "object_ids", "confidence_definition",
                                   "frames": {stem: {id: {"score", "present"}}}}
    <prefix>/<video>/probs.npz    optional; array "probs", uint8 (T, K, H, W) = probability × 255

Writing streams: each frame's PNG is written as it arrives and the soft probabilities go frame by frame into
a temporary .npz, so memory does not grow with the video's length. scores.json is written last.
"""

from __future__ import annotations

import json
import math
import tempfile
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from stseg_core.data.labels import encode_label_png, read_label_png
from stseg_core.data.mose import check_video_name
from stseg_core.errors import BadInputError
from stseg_core.models.base import FrameResult
from stseg_core.runlayout import pred_prefix
from stseg_core.store import Store, join_key

SCORES_FILE = "scores.json"
PROBS_FILE = "probs.npz"
_PROBS_ENTRY = "probs.npy"


class _ProbsWriter:
    """Appends K×H×W uint8 frames to one (T, K, H, W) array inside a deflated .npz temp file."""

    def __init__(self, shape: tuple[int, int, int, int]) -> None:
        # closed and removed by discard(), which the writer always reaches
        self._tmp = tempfile.NamedTemporaryFile(prefix="stseg-probs-", suffix=".npz", delete=False)  # noqa: SIM115
        self.path = Path(self._tmp.name)
        self._zip = zipfile.ZipFile(self._tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1)
        self._entry = self._zip.open(_PROBS_ENTRY, "w", force_zip64=True)
        np.lib.format.write_array_header_2_0(
            self._entry, {"descr": np.dtype(np.uint8).str, "fortran_order": False, "shape": shape}
        )

    def add(self, probs: np.ndarray) -> None:
        self._entry.write(np.ascontiguousarray(probs, dtype=np.uint8).tobytes())

    def finish(self) -> Path:
        """Close the archive; the file at the returned path is complete, to be copied to the store (from disk:
        a long video's probabilities never sit in memory) before `discard`."""
        self._entry.close()
        self._zip.close()
        self._tmp.close()
        return self.path

    def discard(self) -> None:
        """Close what is still open and remove the temp file (after the upload, or on failure)."""
        try:
            self._entry.close()
            self._zip.close()
        except (OSError, ValueError, zipfile.BadZipFile):
            pass  # the file is being thrown away; only its removal matters
        self._tmp.close()
        self.path.unlink(missing_ok=True)


def _check_frame(where: str, r: FrameResult, ids: tuple[int, ...], shape: tuple[int, int] | None) -> None:
    if r.labels.ndim != 2 or r.labels.dtype != np.uint8:
        raise BadInputError(f"{where}: labels must be HxW uint8, got shape {r.labels.shape} dtype {r.labels.dtype}")
    if shape is not None and r.labels.shape != shape:
        raise BadInputError(f"{where}: labels are {r.labels.shape}, earlier frames were {shape}")
    if set(r.scores) != set(ids) or set(r.present) != set(ids):
        raise BadInputError(
            f"{where}: scores/present must cover object ids {list(ids)}, got {sorted(r.scores)} / {sorted(r.present)}"
        )
    for i, s in r.scores.items():
        if not (isinstance(s, int | float | np.floating) and math.isfinite(s) and 0.0 <= s <= 1.0):
            raise BadInputError(f"{where}: score of object {i} is {s!r}, not in [0, 1]")
    unknown = set(np.unique(r.labels).tolist()) - {0, *ids}
    if unknown:
        raise BadInputError(f"{where}: labels hold ids {sorted(unknown)} that are not object ids {list(ids)}")
    if r.probs is not None and (r.probs.dtype != np.uint8 or r.probs.shape != (len(ids), *r.labels.shape)):
        raise BadInputError(
            f"{where}: probs must be uint8 {(len(ids), *r.labels.shape)}, got {r.probs.dtype} {r.probs.shape}"
        )


def _checked(
    results: Iterable[FrameResult], model: str, video: str, stems: tuple[str, ...], ids: tuple[int, ...]
) -> Iterator[FrameResult]:
    """`results` as they come, each checked before it is written: one per stem in order, `_check_frame` (with the
    shape of the frames before it), and soft probabilities on every frame or on none."""
    shape: tuple[int, int] | None = None
    with_probs: bool | None = None
    for t, r in enumerate(results):
        where = f"{model} video {video} frame {r.stem}"
        if t >= len(stems) or r.stem != stems[t]:
            want = stems[t] if t < len(stems) else "none (more results than frames)"
            raise BadInputError(f"{where}: result {t} is for frame {r.stem}, expected {want}")
        _check_frame(where, r, ids, shape)
        shape = r.labels.shape
        if with_probs is None:
            with_probs = r.probs is not None
        elif with_probs != (r.probs is not None):
            raise BadInputError(f"{where}: soft probabilities on some frames only")
        yield r


def _scores_json(
    model: str,
    video: str,
    ids: tuple[int, ...],
    confidence_definition: str,
    frames: dict[str, dict[str, dict[str, float | bool]]],
) -> bytes:
    """scores.json's bytes: sorted keys, compact, one line, so the same scores always give the same file."""
    doc = {
        "model": model,
        "video": video,
        "object_ids": list(ids),
        "confidence_definition": confidence_definition,
        "frames": frames,
    }
    return (json.dumps(doc, sort_keys=True, separators=(",", ":")) + "\n").encode("utf-8")


def write_video_predictions(
    store: Store,
    model: str,
    video: str,
    results: Iterable[FrameResult],
    *,
    stems: Sequence[str],
    object_ids: Sequence[int],
    confidence_definition: str,
    prefix: str | None = None,
) -> list[str]:
    """Write one video's results (one per stem, in order) under `prefix` (default `pred/<model>`).

    Returns the keys written (relative to `store`), scores.json last. Results that break the contract
    (wrong stem order, ids, shapes, scores outside [0, 1], probs on some frames only) are bad input naming
    the video and frame; what was written before stays and is overwritten by a re-run.
    """
    check_video_name(video)
    prefix = pred_prefix(model) if prefix is None else join_key(prefix)
    base = join_key(prefix, video)
    ids = tuple(int(i) for i in object_ids)
    stems = tuple(stems)
    keys: list[str] = []
    frames: dict[str, dict[str, dict[str, float | bool]]] = {}
    probs_out: _ProbsWriter | None = None
    try:
        for t, r in enumerate(_checked(results, model, video, stems, ids)):
            if t == 0 and r.probs is not None:
                probs_out = _ProbsWriter((len(stems), len(ids), *r.labels.shape))
            key = join_key(base, f"{check_video_name(r.stem)}.png")
            store.write_bytes(key, encode_label_png(r.labels))
            keys.append(key)
            if probs_out is not None and r.probs is not None:  # checked: then every frame has them
                probs_out.add(r.probs)
            frames[r.stem] = {
                str(i): {"score": round(float(r.scores[i]), 6), "present": bool(r.present[i])} for i in ids
            }
        if len(frames) != len(stems):
            raise BadInputError(
                f"{model} video {video}: {len(frames)} results for {len(stems)} frames "
                f"(first missing: {stems[len(frames)]})"
            )
        if probs_out is not None:
            key = join_key(base, PROBS_FILE)
            store.write_file(key, probs_out.finish())
            keys.append(key)
    finally:
        if probs_out is not None:
            probs_out.discard()
    key = join_key(base, SCORES_FILE)
    store.write_bytes(key, _scores_json(model, video, ids, confidence_definition, frames))
    keys.append(key)
    return keys


@dataclass(frozen=True)
class VideoPredictions:
    """One video's stored predictions. `scores[stem][id]` in [0, 1], `present[stem][id]`; label maps and
    probabilities are read on demand, one frame at a time."""

    store: Store = field(repr=False)
    base: str
    model: str
    video: str
    object_ids: tuple[int, ...]
    confidence_definition: str
    stems: tuple[str, ...]
    scores: dict[str, dict[int, float]] = field(repr=False)
    present: dict[str, dict[int, bool]] = field(repr=False)

    def labels(self, stem: str) -> np.ndarray:
        """H×W uint8 label map of one frame."""
        key = join_key(self.base, f"{stem}.png")
        return read_label_png(self.store.read_bytes(key), self.store.uri(key))

    def iter_labels(self) -> Iterator[tuple[str, np.ndarray]]:
        for stem in self.stems:
            yield stem, self.labels(stem)

    @property
    def has_probs(self) -> bool:
        return self.store.exists(join_key(self.base, PROBS_FILE))

    def iter_probs(self) -> Iterator[tuple[str, np.ndarray]]:
        """(stem, K×H×W uint8) per frame, streamed from probs.npz; BadInputError if the model wrote none."""
        key = join_key(self.base, PROBS_FILE)
        if not self.store.exists(key):
            raise BadInputError(f"{self.store.uri(key)}: model {self.model} wrote no soft probabilities")
        local = self.store.local_path(key)
        with tempfile.TemporaryDirectory(prefix="stseg-probs-") as tmp:
            if local is None:  # streamed to disk: a long video's probabilities never sit in memory
                local = Path(tmp) / PROBS_FILE
                self.store.read_file(key, local)
            yield from _stream_npz(local, self.store.uri(key), self.stems, len(self.object_ids))


def _stream_npz(path: Path, uri: str, stems: tuple[str, ...], k: int) -> Iterator[tuple[str, np.ndarray]]:
    try:
        with zipfile.ZipFile(path) as zf, zf.open(_PROBS_ENTRY) as fh:
            version = np.lib.format.read_magic(fh)
            read_header = (
                np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            )
            shape, fortran, dtype = read_header(fh)
            if dtype != np.uint8 or fortran or len(shape) != 4 or shape[:2] != (len(stems), k):
                raise BadInputError(f"{uri}: probs must be uint8 ({len(stems)}, {k}, H, W), got {dtype} {shape}")
            n = int(np.prod(shape[1:]))
            for stem in stems:
                buf = fh.read(n)
                if len(buf) != n:
                    raise BadInputError(f"{uri}: truncated at frame {stem}")
                yield stem, np.frombuffer(buf, np.uint8).reshape(shape[1:])
    except (zipfile.BadZipFile, KeyError, ValueError) as err:
        raise BadInputError(f"{uri}: not a probs.npz ({err})") from None


def read_video_predictions(store: Store, model: str, video: str, *, prefix: str | None = None) -> VideoPredictions:
    """Open one video's predictions under `prefix` (default `pred/<model>`); reads scores.json now."""
    check_video_name(video)
    prefix = pred_prefix(model) if prefix is None else join_key(prefix)
    base = join_key(prefix, video)
    key = join_key(base, SCORES_FILE)
    doc = store.read_json(key)
    try:
        ids = tuple(int(i) for i in doc["object_ids"])
        stems = tuple(sorted(doc["frames"], key=lambda s: (len(s), s)))
        scores = {s: {int(i): float(v["score"]) for i, v in doc["frames"][s].items()} for s in stems}
        present = {s: {int(i): bool(v["present"]) for i, v in doc["frames"][s].items()} for s in stems}
        return VideoPredictions(
            store=store,
            base=base,
            model=str(doc["model"]),
            video=str(doc["video"]),
            object_ids=ids,
            confidence_definition=str(doc["confidence_definition"]),
            stems=stems,
            scores=scores,
            present=present,
        )
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise BadInputError(f"{store.uri(key)}: not a scores.json (bad or missing field {err})") from None
