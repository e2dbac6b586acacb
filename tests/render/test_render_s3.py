"""Rendering onto an object store: a real S3-compatible server (moto) on 127.0.0.1, no patched client."""
import hashlib
import io
import socket

import pyarrow.parquet as pq
import pytest
import soundfile as sf

from sing_ray.errors import UserError
from sing_ray.render import TMP_MARK, plan_render, render_library
from sing_ray.library.sfz import parse_sfz


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def s3_endpoint(monkeypatch):
    """moto's S3 server on 127.0.0.1, reached through the standard AWS environment variables."""
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    for key, value in {"AWS_ENDPOINT_URL": url, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1",
                       "AWS_EC2_METADATA_DISABLED": "true"}.items():
        monkeypatch.setenv(key, value)
    try:
        yield url
    finally:
        server.stop()


def test_render_to_s3(ray_local, tiny_sing, s3_endpoint):
    import s3fs

    store = s3fs.S3FileSystem(client_kwargs={"endpoint_url": s3_endpoint})
    store.mkdir("sing-lib")
    uri = "s3://sing-lib/libraries/tiny"
    plan = plan_render(tiny_sing, uri, instruments="guitar_acoustic_000,keyboard_electronic_002", pitches="48,72",
                       velocities="50,100")
    summary = render_library(plan, batch_size=3, workers=1)
    assert (summary.rendered, summary.total) == (8, 8)
    keys = sorted(k.split("libraries/tiny/", 1)[1] for k in store.find("sing-lib/libraries/tiny"))
    notes = [k for k in keys if k.endswith(".wav")]
    assert len(notes) == 8 and not [k for k in keys if TMP_MARK in k or ".sing-ray-probe" in k]
    assert {"manifest.parquet", "guitar_acoustic_000.sfz", "keyboard_electronic_002.sfz"} <= set(keys)
    rows = pq.read_table(io.BytesIO(store.cat(f"{uri}/manifest.parquet"))).to_pylist()
    assert sorted(r["path"] for r in rows) == notes
    for r in rows:
        data = store.cat(f"{uri}/{r['path']}")
        assert hashlib.sha256(data).hexdigest() == r["sha256"]
        assert sf.info(io.BytesIO(data)).frames == 64000
    regions = parse_sfz(store.cat(f"{uri}/guitar_acoustic_000.sfz").decode())
    assert sorted(r["sample"] for r in regions) == [n for n in notes if n.startswith("guitar")]
    # The audition page plays from the bucket: every object carries its media type.
    assert {"index.html", "library.sf2", "guitar_acoustic_000.dspreset"} <= set(keys)
    assert len([k for k in keys if k.endswith(".png")]) == 8
    types = {k.rsplit(".", 1)[-1]: store.call_s3("head_object", Bucket="sing-lib", Key=f"libraries/tiny/{k}")["ContentType"] for k in keys}
    assert types["html"] == "text/html" and types["png"] == "image/png" and types["wav"] in ("audio/x-wav", "audio/wav")

    # A re-run finds everything in the bucket and renders nothing.
    again = plan_render(tiny_sing, uri, instruments="guitar_acoustic_000,keyboard_electronic_002",
                        pitches="48,72", velocities="50,100")
    assert again.todo == [] and len(again.existing) == 8
    # A bucket that does not exist is refused before any work.
    with pytest.raises(UserError, match="cannot write there"):
        plan_render(tiny_sing, "s3://no-such-bucket/lib", pitches="60", velocities="100")
