"""Checkpoint resolution (file, file://, local S3 server with a cache) and strict state-dict loading."""

import pytest
import torch

from stseg_core.errors import BadInputError, MissingArtifactError
from stseg_core.models.checkpoint import cache_dir, load_checkpoint, read_state_dict, resolve_checkpoint


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("STSEG_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "checkpoints"


def _linear_sd(seed: int = 0) -> dict:
    torch.manual_seed(seed)
    return torch.nn.Linear(2, 3).state_dict()


def test_local_files_are_used_in_place(tmp_path, cache):
    path = tmp_path / "w" / "m.pt"
    path.parent.mkdir()
    torch.save({"model": _linear_sd()}, path)
    assert resolve_checkpoint(str(path)) == path
    assert resolve_checkpoint(path.as_uri()) == path
    assert not cache.exists()  # nothing copied for a local file


def test_missing_local_checkpoint_names_the_uri(tmp_path):
    uri = (tmp_path / "nope.pt").as_uri()
    with pytest.raises(MissingArtifactError) as err:
        resolve_checkpoint(uri)
    assert str(err.value) == f"checkpoint {uri}: not found"


def test_s3_checkpoint_is_cached_once_and_refetched_when_replaced(s3_store, s3_bucket, cache):
    first = _linear_sd(0)
    buf_path = cache.parent / "src.pt"
    buf_path.parent.mkdir(parents=True)
    torch.save({"model": first}, buf_path)
    s3_store.write_bytes("ckpt/m.pt", buf_path.read_bytes())
    uri = f"s3://{s3_bucket}/prefix/ckpt/m.pt"

    local = resolve_checkpoint(uri)
    assert local.parent.parent == cache_dir() == cache
    assert local.read_bytes() == buf_path.read_bytes()
    inode = local.stat().st_ino
    assert resolve_checkpoint(uri) == local and local.stat().st_ino == inode  # served from the cache

    # A replaced object of another size lands in another cache entry with the new bytes.
    torch.save({"model": {"w": torch.zeros(7)}}, buf_path)
    s3_store.write_bytes("ckpt/m.pt", buf_path.read_bytes())
    again = resolve_checkpoint(uri)
    assert again != local and again.read_bytes() == buf_path.read_bytes()
    assert torch.equal(read_state_dict(uri)["w"], torch.zeros(7))
    assert not list(cache.rglob("*.part"))  # no temp files left behind


def test_missing_s3_checkpoint_names_the_uri(s3_store, s3_bucket, cache):
    uri = f"s3://{s3_bucket}/prefix/ckpt/none.pt"
    with pytest.raises(MissingArtifactError) as err:
        resolve_checkpoint(uri)
    assert str(err.value) == f"checkpoint {uri}: not found"


def test_read_state_dict_accepts_upstream_and_bare_forms(tmp_path):
    sd = _linear_sd()
    torch.save({"model": sd, "epoch": 3}, tmp_path / "up.pt")
    torch.save(sd, tmp_path / "bare.pt")
    for name in ("up.pt", "bare.pt"):
        got = read_state_dict(str(tmp_path / name))
        assert sorted(got) == ["bias", "weight"] and torch.equal(got["weight"], sd["weight"])


def test_unreadable_or_stateless_checkpoints_are_bad_input(tmp_path):
    (tmp_path / "text.pt").write_text("not a checkpoint")
    with pytest.raises(BadInputError, match=r"^checkpoint .*text\.pt: not a readable PyTorch checkpoint \("):
        read_state_dict(str(tmp_path / "text.pt"))
    torch.save({"epoch": 3, "optim": {"lr": 0.1}}, tmp_path / "meta.pt")
    with pytest.raises(BadInputError) as err:
        read_state_dict(str(tmp_path / "meta.pt"))
    assert str(err.value) == (
        f"checkpoint {tmp_path / 'meta.pt'}: holds no state dict (expected "
        "{'model': state_dict} or a bare state dict; top level: ['epoch', 'optim'])"
    )


def test_strict_loading_names_missing_unexpected_and_misshaped_keys(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Linear(3, 1))
    wrong = {"0.weight": torch.zeros(3, 2), "0.bias": torch.zeros(4), "2.weight": torch.zeros(1)}
    torch.save({"model": wrong}, tmp_path / "wrong.pt")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(BadInputError) as err:
        load_checkpoint(model, str(tmp_path / "wrong.pt"), model="mlp")
    assert str(err.value) == (
        f"checkpoint {tmp_path / 'wrong.pt'}: does not fit model mlp: missing keys 1.bias, 1.weight; "
        "unexpected keys 2.weight; shape mismatch 0.bias (e.g. 0.bias: checkpoint [4], model [3])"
    )
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # nothing half-loaded

    good = {k: torch.full_like(v, 0.5) for k, v in before.items()}
    torch.save({"model": good}, tmp_path / "good.pt")
    load_checkpoint(model, (tmp_path / "good.pt").as_uri(), model="mlp")
    assert all(torch.equal(v, torch.full_like(v, 0.5)) for v in model.state_dict().values())
