"""`tomoseg fetch-weights`: offline it fails at once saying where to put the files; present files are kept."""

import hashlib
import json
import time

import pytest

from tomoseg.core.io import InputError
from tomoseg.etsam.weights import WEIGHT_FILES, fetch_weights


def test_offline_fails_fast_with_instructions(tmp_path):
    t0 = time.monotonic()
    with pytest.raises(InputError) as err:
        fetch_weights(tmp_path, base="http://127.0.0.1:9")  # nothing listens on the discard port
    assert time.monotonic() - t0 < 10
    msg = str(err.value)
    assert (
        "etsam_stage1_v1.pt" in msg and "https://zenodo.org/records/17571925" in msg and str(tmp_path) in msg
    )
    assert not any(p.name.endswith(".pt") for p in tmp_path.iterdir())


def test_present_files_are_not_downloaded_and_checksums_recorded(tmp_path):
    for name in WEIGHT_FILES:
        (tmp_path / name).write_bytes(name.encode())
    sums = fetch_weights(tmp_path, base="http://127.0.0.1:9")
    assert sums == {n: hashlib.sha256(n.encode()).hexdigest() for n in WEIGHT_FILES}
    assert json.loads((tmp_path / "weights.json").read_text())["sha256"] == sums


def test_download_resumes_a_part_file(tmp_path):
    """A stand-in HTTP server on 127.0.0.1 that honours Range: the .part file is continued, not restarted."""
    import http.server
    import threading

    payload = {name: bytes(range(256)) * 40 + name.encode() for name in WEIGHT_FILES}
    ranges = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's naming
            name = self.path.split("/files/")[1].split("?")[0]
            body, start = payload[name], 0
            if self.headers.get("Range"):
                start = int(self.headers["Range"].split("=")[1].rstrip("-"))
                ranges.append((name, start))
                self.send_response(206)
            else:
                self.send_response(200)
            self.send_header("Content-Length", str(len(body) - start))
            self.end_headers()
            self.wfile.write(body[start:])

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        first = WEIGHT_FILES[0]
        (tmp_path / f"{first}.part").write_bytes(payload[first][:1000])
        fetch_weights(tmp_path, base=f"http://127.0.0.1:{server.server_port}")
    finally:
        server.shutdown()
    assert ranges == [(first, 1000)]
    for name in WEIGHT_FILES:
        assert (tmp_path / name).read_bytes() == payload[name]
        assert not (tmp_path / f"{name}.part").exists()
