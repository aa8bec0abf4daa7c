"""Run layout keys and shard done markers: written last, verified, idempotent, absent after a failure."""

import hashlib

import pytest

from stseg_core import runlayout as rl
from stseg_core.errors import BackendError, BadInputError, MissingArtifactError
from stseg_core.s3store import S3Settings, S3Store
from stseg_core.store import FileStore, open_store


class _RecordingStore(FileStore):
    """A real folder store that remembers the order of writes."""

    def __init__(self, path):
        super().__init__(path)
        self.writes = []

    def write_bytes(self, key, data):
        self.writes.append(key)
        super().write_bytes(key, data)


def _write_shard(store, model="sam2", videos=("v1", "v2"), frames=3):
    keys = []
    for video in videos:
        for i in range(frames):
            key = rl.pred_key(model, video, f"{i:05d}")
            store.write_bytes(key, f"{video}-{i}".encode() * (i + 1))
            keys.append(key)
        store.write_json(rl.scores_key(model, video), {"video": video})
        keys.append(rl.scores_key(model, video))
    return keys


def test_keys_follow_the_run_layout():
    assert rl.run_prefix("r-2025") == "runs/r-2025"
    assert rl.pred_key("sam2", "0a7b", "00012") == "pred/sam2/0a7b/00012.png"
    assert rl.scores_key("cutie", "v") == "pred/cutie/v/scores.json"
    assert rl.probs_key("xmem", "v") == "pred/xmem/v/probs.npz"
    assert rl.fused_key("v", "00000") == "fused/v/00000.png"
    assert rl.eval_prefix("pgmr") == "eval/pgmr"
    assert rl.done_key(rl.pred_prefix("sam2"), 7) == "pred/sam2/_done/7.json"
    assert rl.done_key(rl.FUSED, 0) == "fused/_done/0.json"
    assert rl.checkpoint_key("sam2", "r1", 3) == "checkpoints/sam2/r1/epoch_3.pt"


@pytest.mark.parametrize(
    ("call", "bad"),
    [
        (lambda: rl.pred_key("sam2", "../x", "00000"), "video name '../x'"),
        (lambda: rl.pred_key("sam2", "v", "a/b"), "frame name 'a/b'"),
        (lambda: rl.pred_key("", "v", "0"), "model name ''"),
        (lambda: rl.done_key("pred/sam2", ".."), "shard name '..'"),
    ],
)
def test_bad_names_are_refused(call, bad):
    with pytest.raises(BadInputError, match=f"^{bad}"):
        call()


def test_commit_writes_the_marker_last_with_sizes_and_hashes(tmp_path):
    store = _RecordingStore(tmp_path)
    keys = _write_shard(store)
    marker = rl.commit_shard(store, "pred/sam2", 3, keys, meta={"model": "sam2"})
    assert store.writes[-1] == "pred/sam2/_done/3.json"
    written = store.read_json("pred/sam2/_done/3.json")
    assert written == marker.to_json() and rl.read_marker(store, "pred/sam2", 3) == marker
    assert sorted(written["files"]) == sorted(keys) == sorted(marker.files)
    for key in keys:
        data = (tmp_path / key).read_bytes()
        assert written["files"][key] == {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        assert marker.files[key] == rl.FileRecord(len(data), hashlib.sha256(data).hexdigest())
    assert written["total_bytes"] == marker.total_bytes == sum((tmp_path / k).stat().st_size for k in keys)
    assert written["shard"] == "3" and written["meta"] == {"model": "sam2"} and written["version"] == 1
    assert rl.shard_done(store, "pred/sam2", 3) and not rl.shard_done(store, "pred/sam2", 4)
    assert rl.verify_shard(store, "pred/sam2", 3) == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[1]", "done marker has no 'files' table"),
        ('{"files": {"a.png": {"size": 3}}}', "done marker has a file without size and sha256"),
    ],
)
def test_a_malformed_marker_is_one_line_naming_it(tmp_path, text, message):
    store = FileStore(tmp_path)
    store.write_bytes("pred/m/_done/0.json", text.encode())
    with pytest.raises(BadInputError) as err:
        rl.read_marker(store, "pred/m", 0)
    assert str(err.value) == f"{store.uri('pred/m/_done/0.json')}: {message}"


def test_verify_finds_changed_and_missing_files(tmp_path):
    store = FileStore(tmp_path)
    keys = _write_shard(store)
    rl.commit_shard(store, "pred/sam2", 0, keys)
    store.write_bytes(keys[0], b"longer than before!!")
    first = store.read_bytes(keys[1])
    store.write_bytes(keys[1], bytes([first[0] ^ 1]) + first[1:])  # same size, other bytes
    store.delete(keys[2])
    assert rl.verify_shard(store, "pred/sam2", 0) == [
        f"{store.uri(keys[0])}: size 20 != 4 in the marker",
        f"{store.uri(keys[1])}: sha256 differs from the marker",
        f"{store.uri(keys[2])}: missing",
    ]
    with pytest.raises(MissingArtifactError, match="shard 5 of pred/sam2 is not done"):
        rl.verify_shard(store, "pred/sam2", 5)


def test_done_shards_in_numeric_order(tmp_path):
    store = FileStore(tmp_path)
    for shard in (10, 2, 0):
        rl.commit_shard(store, "pred/m", shard, [])
    assert rl.done_shards(store, "pred/m") == ["0", "2", "10"]
    assert rl.done_shards(store, "pred/other") == []


def test_a_done_shard_is_not_run_again(tmp_path):
    store = FileStore(tmp_path)
    runs = []

    def produce():
        runs.append(1)
        return _write_shard(store)

    first = rl.run_shard_once(store, "pred/sam2", 1, produce)
    second = rl.run_shard_once(store, "pred/sam2", 1, produce)
    assert (first.skipped, second.skipped, len(runs)) == (False, True, 1)
    assert second.marker == first.marker


def test_a_half_written_shard_runs_again(tmp_path):
    store = FileStore(tmp_path)
    store.write_bytes(rl.pred_key("sam2", "v1", "00000"), b"stale from a crashed run")
    outcome = rl.run_shard_once(store, "pred/sam2", 0, lambda: _write_shard(store))
    assert not outcome.skipped
    assert store.read_bytes(rl.pred_key("sam2", "v1", "00000")) == b"v1-0"
    assert rl.verify_shard(store, "pred/sam2", 0) == []


def test_a_missing_output_leaves_no_marker(tmp_path):
    store = FileStore(tmp_path)
    keys = [*_write_shard(store), "pred/sam2/v9/00000.png"]
    with pytest.raises(MissingArtifactError, match=r"v9/00000\.png: not found"):
        rl.commit_shard(store, "pred/sam2", 0, keys)
    assert not rl.shard_done(store, "pred/sam2", 0)


def test_s3_failure_outlasting_retries_leaves_no_marker(s3_bucket, s3_server, fault_proxy):
    """Outputs land, then S3 fails for longer than the retries: commit raises BackendError, no marker."""
    direct = open_store(f"s3://{s3_bucket}/runs/r1")
    keys = _write_shard(direct)
    settings = S3Settings.from_env(endpoint=None, max_attempts=1, retries=2, backoff_s=0.01)
    # Reading the outputs back fails.
    proxy = fault_proxy(fault_proxy.always("503", when=lambda r: r.method == "GET"))
    through = S3Store(s3_bucket, "runs/r1", S3Settings(**{**settings.__dict__, "endpoint": proxy.url}))
    with pytest.raises(BackendError) as err:
        rl.commit_shard(through, "pred/sam2", 0, keys)
    assert str(err.value).startswith(f"s3://{s3_bucket}/runs/r1/pred/sam2/") and "\n" not in str(err.value)
    # Writing the marker itself fails (connections dropped on every PUT to _done/).
    proxy = fault_proxy(fault_proxy.always("reset", when=lambda r: r.method == "PUT" and "/_done/" in r.path))
    through = S3Store(s3_bucket, "runs/r1", S3Settings(**{**settings.__dict__, "endpoint": proxy.url}))
    with pytest.raises(BackendError, match=r"_done/0\.json: write failed after 3 attempts"):
        rl.commit_shard(through, "pred/sam2", 0, keys)
    assert proxy.counts["reset"] == 3
    assert not rl.shard_done(direct, "pred/sam2", 0)
    assert direct.list("pred/sam2/_done") == []
    # Once S3 recovers, the same commit succeeds and verifies.
    rl.commit_shard(direct, "pred/sam2", 0, keys)
    assert rl.done_shards(direct, "pred/sam2") == ["0"] and rl.verify_shard(direct, "pred/sam2", 0) == []
