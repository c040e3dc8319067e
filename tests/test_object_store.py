"""Datasets in an object store: ``s3://`` URLs read through s3fs from an S3 server on
localhost (moto's, which speaks the S3 REST protocol over HTTP: AWS itself cannot be
reached from here)."""

import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from ferkit.data import load_fer2013, pack_fer2013

moto_server = pytest.importorskip("moto.server", reason="needs moto[server] (pip install -e '.[test]')")
pytest.importorskip("s3fs", reason="needs s3fs (pip install -e '.[cloud]')")


@pytest.fixture
def bucket(monkeypatch, cache_dir):
    """An S3 endpoint on a free local port with one bucket, ``faces``; yields a boto3 client."""
    import boto3
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()  # fsspec keeps one per options: the last test's endpoint
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    for key, value in {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "test",
                       "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    client = boto3.client("s3")
    client.create_bucket(Bucket="faces")
    yield client
    server.stop()


def test_a_csv_in_a_bucket_loads_as_the_local_file(bucket, tiny_csv):
    bucket.upload_file(str(tiny_csv), "faces", "fer/fer2013.csv")
    remote, local = load_fer2013("s3://faces/fer/fer2013.csv"), load_fer2013(tiny_csv)
    assert remote.root.name == "fer2013.csv" and remote.root != local.root  # a local copy, in the cache
    for split in ("train", "val", "test"):
        assert np.array_equal(remote[split].images, local[split].images)
        assert np.array_equal(remote[split].targets, local[split].targets)


def test_a_changed_object_is_fetched_again(bucket, tiny_csv, tmp_path):
    pack_fer2013(tiny_csv, tmp_path / "all.npz", ["train", "val", "test"])
    pack_fer2013(tiny_csv, tmp_path / "train.npz", ["train"])
    bucket.upload_file(str(tmp_path / "all.npz"), "faces", "fer.npz")
    assert len(load_fer2013("s3://faces/fer.npz")["test"]) == 14
    assert len(load_fer2013("s3://faces/fer.npz")["test"]) == 14  # from the cache
    bucket.upload_file(str(tmp_path / "train.npz"), "faces", "fer.npz")  # same key, other content
    again = load_fer2013("s3://faces/fer.npz")
    assert len(again["test"]) == 0 and len(again["train"]) == 56


def test_a_folder_or_a_missing_object_is_refused_by_name(bucket, tiny_csv):
    bucket.upload_file(str(tiny_csv), "faces", "fer/fer2013.csv")
    with pytest.raises(ValueError, match="s3://faces/fer is a folder.*ferkit pack"):
        load_fer2013("s3://faces/fer")
    with pytest.raises(FileNotFoundError, match="s3://faces/fer/missing.csv"):
        load_fer2013("s3://faces/fer/missing.csv")
    with pytest.raises(FileNotFoundError, match="s3://no-such-bucket/fer2013.csv"):
        load_fer2013("s3://no-such-bucket/fer2013.csv")


@pytest.mark.parametrize("processes", [1, 2])
def test_ferkit_train_reads_its_data_from_a_bucket(bucket, tiny_csv, tmp_path, processes):
    """One process, and two under torchrun as on a cluster's node (one of them fetches the
    pack while the other waits, then both read the local copy)."""
    pack_fer2013(tiny_csv, tmp_path / "fer2013-trainval.npz.xz")
    bucket.upload_file(str(tmp_path / "fer2013-trainval.npz.xz"), "faces", "fer2013-trainval.npz.xz")
    out = tmp_path / "run"
    launcher = ([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
                if processes == 2 else [sys.executable])
    r = subprocess.run([*launcher, "-m", "ferkit.cli", "train", "--data", "s3://faces/fer2013-trainval.npz.xz",
                        "--epochs", "1", "--batch-size", "8", "--out", str(out), "--no-progress", "--threads", "1"],
                       capture_output=True, text=True, env=dict(os.environ), timeout=300)
    assert r.returncode == 0, r.stderr
    assert "56 train / 14 val faces" in r.stdout and (out / "best.pt").is_file()
    assert len(list((tmp_path / "cache" / "remote").glob("*/fer2013-trainval.npz.xz"))) == 1


def test_a_pack_on_a_web_server_loads(tiny_csv, tmp_path, cache_dir):
    """https:// and http:// go through fsspec's HTTP filesystem (aiohttp); here Python's
    own http.server, on a free local port."""
    import functools
    import http.server
    import threading

    pack_fer2013(tiny_csv, tmp_path / "site" / "fer.npz")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path / "site"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        assert np.array_equal(load_fer2013(f"{url}/fer.npz")["val"].images, load_fer2013(tiny_csv)["val"].images)
        with pytest.raises(FileNotFoundError, match="fer2.npz"):
            load_fer2013(f"{url}/fer2.npz")
    finally:
        server.shutdown()


def test_a_store_that_cannot_be_read_is_an_error_that_names_the_url(monkeypatch, cache_dir):
    from ferkit.errors import DataError

    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for key, value in {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "test",
                       "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1",
                       "AWS_MAX_ATTEMPTS": "1"}.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(DataError, match=r"s3://faces/fer.npz: cannot read it: EndpointConnectionError"):
        load_fer2013("s3://faces/fer.npz")
    with pytest.raises(DataError, match=r"nosuch://faces/fer.npz: Protocol not known"):
        load_fer2013("nosuch://faces/fer.npz")
    r = subprocess.run([sys.executable, "-m", "ferkit.cli", "explore", "nosuch://faces/fer.npz"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr and "Protocol not known" in r.stderr
