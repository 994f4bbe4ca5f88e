"""`idp serve` on a fresh machine: the embedded defaults answer over HTTP (the README's first command)."""

import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_idp_serve_runs_the_embedded_defaults(tmp_path):
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", "from idp.cli import main; main()", "serve", "--port", str(port)],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                resp = requests.get(f"http://127.0.0.1:{port}/.well-known/openid-configuration", timeout=2)
                break
            except requests.ConnectionError:
                assert proc.poll() is None, proc.stdout.read().decode()
                assert time.monotonic() < deadline, "idp serve did not answer within 60 s"
                time.sleep(0.2)
        assert resp.status_code == 200
        assert resp.json()["issuer"] == f"http://127.0.0.1:{port}"  # the issuer follows --port
        assert requests.get(f"http://127.0.0.1:{port}/jwks.json", timeout=5).json()["keys"]
        assert requests.get(f"http://127.0.0.1:{port}/demo/", timeout=5).status_code == 200
        assert (tmp_path / "instance" / "idp.sqlite3").exists()  # SQLite under the instance folder
    finally:
        proc.terminate()
        proc.wait(10)
