"""Forgot-password answers as fast for a real account as for an unknown one while the SMTP
relay hangs (issue 12 part 4: no oracle, no held worker).

    python bench/outbound_timing.py [--requests N]

Builds a development provider on SQLite in a temporary folder whose mail goes
to an SMTP "relay" that accepts connections and never answers, with the
outbound worker external (nothing sends during the run), creates one account,
then times N forgot-password POSTs for that account and N for an unknown name,
alternating, through the Flask test client. Prints the median and p90 of each
and the difference of the medians. Nothing is downloaded; no shared service is
touched.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def hung_relay() -> tuple[socket.socket, int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    return sock, sock.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=100)
    args = parser.parse_args()
    os.environ.update(
        {
            "IDP_TEST_SECRET_KEY": "k" * 48,
            "IDP_TEST_KEYS_PASSPHRASE": "bench keys passphrase, not for production",
            "IDP_TEST_PORTAL_SECRET": "p" * 48,
        }
    )
    from idp import create_app
    from idp.accounts.users import create_local_account
    from tests.conftest import base_config, csrf_from, merge

    _relay, port = hung_relay()
    folder = Path(tempfile.mkdtemp(prefix="idp-bench-"))
    config = merge(
        base_config("http://localhost", f"sqlite:///{folder}/idp.sqlite3", folder),
        {
            "mail": {
                "backend": "smtp",
                "sender": "no-reply@example.org",
                "smtp": {"host": "127.0.0.1", "port": port, "security": "none", "timeout": 10},
            },
            "registration": {"recovery": {"response_time_floor_ms": 0}},
        },
    )
    app = create_app(overrides=config, instance_dir=str(folder))
    with app.app_context():
        create_local_account("alice", password="correct horse battery staple", email="alice@example.com")
    client = app.test_client()
    token = csrf_from(client.get("/recover/password").get_data(as_text=True))
    times: dict[str, list[float]] = {"alice": [], "nobody": []}
    for i in range(args.requests * 2):
        name = "alice" if i % 2 == 0 else "nobody"
        started = time.perf_counter()
        resp = client.post("/recover/password", data={"csrf_token": token, "username": name})
        times[name].append((time.perf_counter() - started) * 1000)
        assert resp.status_code == 303, resp.status_code
    for name, values in times.items():
        values.sort()
        print(
            f"{name:7s} median {statistics.median(values):6.2f} ms  "
            f"p90 {values[int(len(values) * 0.9)]:6.2f} ms  (n={len(values)})"
        )
    diff = statistics.median(times["alice"]) - statistics.median(times["nobody"])
    print(f"difference of the medians: {diff:+.2f} ms (the relay hangs; before the queue: ~10 s)")


if __name__ == "__main__":
    main()
