"""The store contract, run the same on a local folder and on the local S3 server; bad URIs."""

import hashlib
import os

import pytest

from stseg_core.errors import BadInputError, MissingArtifactError
from stseg_core.store import FileStore, open_store


@pytest.fixture(params=["file", "s3"])
def store(request, tmp_path):
    if request.param == "file":
        return open_store(tmp_path / "root")
    return request.getfixturevalue("s3_store")


def test_read_write_exists_list_delete(store):
    store.write_bytes("a/x.bin", b"\x00\x01\x02")
    store.write_text("a/b/y.txt", "héllo")
    store.write_json("ab.json", {"k": [1, 2]})
    assert store.read_bytes("a/x.bin") == b"\x00\x01\x02"
    assert store.read_text("a/b/y.txt") == "héllo"
    assert store.read_json("ab.json") == {"k": [1, 2]}
    assert store.exists("a/x.bin") and not store.exists("a/missing") and not store.exists("a")
    assert store.list() == ["a/b/y.txt", "a/x.bin", "ab.json"]
    # A prefix is a folder or a key, never a string prefix: "a" does not match "ab.json".
    assert store.list("a") == ["a/b/y.txt", "a/x.bin"]
    assert store.list("a/x.bin") == ["a/x.bin"]
    assert store.list("nothing") == []
    store.write_bytes("a/x.bin", b"new")  # overwrite
    assert store.read_bytes("a/x.bin") == b"new"
    store.delete("a")
    assert store.list() == ["ab.json"]
    store.delete("ab.json")
    store.delete("never-there")
    assert store.list() == []


def test_child_sees_the_same_objects(store):
    store.write_bytes("runs/r1/plan.json", b"{}")
    child = store.child("runs/r1")
    assert child.root == store.uri("runs/r1")
    assert child.list() == ["plan.json"]
    child.write_bytes("pred/m/v/00000.png", b"png")
    assert store.read_bytes("runs/r1/pred/m/v/00000.png") == b"png"
    assert child.uri("plan.json") == store.uri("runs/r1/plan.json")


def test_missing_key_is_one_line_missing_artifact(store):
    with pytest.raises(MissingArtifactError) as err:
        store.read_bytes("no/such.png")
    assert str(err.value) == f"{store.uri('no/such.png')}: not found"


def test_bad_json_names_the_uri(store):
    store.write_bytes("bad.json", b"{nope")
    with pytest.raises(BadInputError, match=r"bad\.json: not valid JSON"):
        store.read_json("bad.json")


@pytest.mark.parametrize("key", ["../up", "a/../../up", "a/../b"])
def test_path_traversal_in_a_key_is_refused(store, key):
    with pytest.raises(BadInputError) as err:
        store.write_bytes(key, b"x")
    message = str(err.value)
    assert "\n" not in message and store.root in message and "path traversal" in message


def test_upload_download_dir_round_trip_byte_identical(store, tmp_path):
    src = tmp_path / "src"
    files = {
        "JPEGImages/v1/00000.jpg": os.urandom(3000),
        "JPEGImages/v1/00001.jpg": os.urandom(10),
        "Annotations/v1/00000.png": b"",
        "meta.json": b'{"seed": 1}',
        "big/blob.bin": os.urandom(9 * 1024 * 1024 + 7),
    }  # > 8 MiB: multipart on S3
    for rel, data in files.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(data)
    assert store.upload_dir(src, "split/train", workers=4) == len(files)
    assert store.list("split/train") == sorted(f"split/train/{k}" for k in files)
    dest = tmp_path / "dest"
    assert store.download_dir("split/train", dest, workers=4) == len(files)
    got = {
        p.relative_to(dest).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in dest.rglob("*")
        if p.is_file()
    }
    assert got == {k: hashlib.sha256(v).hexdigest() for k, v in files.items()}


def test_read_write_file(store, tmp_path):
    src = tmp_path / "in.bin"
    src.write_bytes(b"abc" * 1000)
    store.write_file("f/in.bin", src)
    store.read_file("f/in.bin", tmp_path / "out" / "copy.bin")
    assert (tmp_path / "out" / "copy.bin").read_bytes() == b"abc" * 1000
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["copy.bin"]  # no temp files left behind


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("s3://", "s3://: an S3 URI needs a bucket (s3://bucket/prefix)"),
        ("s3:///only/prefix", "s3:///only/prefix: an S3 URI needs a bucket (s3://bucket/prefix)"),
        ("s3://Bad_Bucket/x", "s3://Bad_Bucket/x: 'Bad_Bucket' is not a valid S3 bucket name"),
        ("s3://bucket/a/../../etc", "s3://bucket/a/../../etc: '..' in an S3 prefix (path traversal)"),
        ("gs://bucket/x", "gs://bucket/x: unsupported store scheme 'gs' (use a path, file:// or s3://)"),
        ("file://host/x", "file://host/x: file URIs name a local path (file:///abs/path), not host 'host'"),
    ],
)
def test_bad_uris_give_one_line_errors(uri, expected):
    with pytest.raises(BadInputError) as err:
        open_store(uri)
    assert str(err.value) == expected


def test_uri_forms(tmp_path):
    assert open_store(tmp_path).root == tmp_path.resolve().as_uri()
    assert open_store(tmp_path.as_uri()).root == tmp_path.resolve().as_uri()
    assert isinstance(open_store(str(tmp_path)), FileStore)
    s3 = open_store("s3://my-bucket/runs//r1/")
    assert (s3.bucket, s3.prefix, s3.root) == ("my-bucket", "runs/r1", "s3://my-bucket/runs/r1")
    assert open_store("s3://my-bucket").root == "s3://my-bucket"
    assert s3.uri("pred/x.png") == "s3://my-bucket/runs/r1/pred/x.png"
