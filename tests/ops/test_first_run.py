"""The README's first run, as a newcomer does it (issue 16, part 8): from an empty folder,
load the sample customers, create an account, start `idp serve --port <free port>` in the
foreground, and log in through the demo relying party in Chromium with the password and
the SMS code from the outbox. The issuer follows the port."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "a long passphrase of yours"


def idp(cwd: Path, *args: str, stdin: str | None = None, **popen):
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(cwd), "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "idp.cli", *args]
    if popen:
        return subprocess.Popen(command, cwd=cwd, env=env, **popen)
    return subprocess.run(command, cwd=cwd, env=env, input=stdin, capture_output=True, text=True, timeout=120)


def last_code(outbox: Path) -> str:
    messages = [json.loads(line) for line in outbox.read_text().splitlines() if line.strip()]
    texts = [m["text"] for m in messages if m["channel"] == "sms"]
    return next(word for word in texts[-1].split() if word.isdigit() and len(word) == 6)


@pytest.mark.browser
def test_the_readme_first_run_logs_in_through_the_demo_on_any_port(tmp_path, page):
    done = idp(tmp_path, "customers", "import", str(ROOT / "config" / "sample-customers.csv"))
    assert done.returncode == 0 and "3 new" in done.stdout, done.stderr
    done = idp(
        tmp_path,
        *("users", "create", "alice", "--email", "alice@example.com", "--phone", "+32470123456"),
        "--password-stdin",
        stdin=PASSWORD + "\n",
    )
    assert done.returncode == 0, done.stderr
    port = free_port()
    server = idp(tmp_path, "serve", "--port", str(port), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                discovery = requests.get(url + "/.well-known/openid-configuration", timeout=2).json()
                break
            except requests.ConnectionError:
                assert server.poll() is None, server.stdout.read().decode()
                assert time.monotonic() < deadline, "idp serve did not answer within 60 s"
                time.sleep(0.2)
        assert discovery["issuer"] == url
        page.goto(url + "/demo/")
        page.click("#demo-login")
        page.wait_for_url(url + "/login/**")  # the same server, not :5000
        page.click("li.method-password a")
        page.fill("#username", "alice")
        page.fill("#password", PASSWORD)
        page.click("button[type=submit].primary")
        page.wait_for_url("**/code")
        page.fill("input[name=code]", last_code(tmp_path / "instance" / "outbox.jsonl"))
        page.click("button[type=submit].primary")
        page.wait_for_url("**/actions/terms")  # a new account accepts the terms first
        page.check("#accept")
        page.click("button[type=submit].primary")
        page.wait_for_url(url + "/demo/")
        claims = json.loads(page.text_content("#id-token-claims"))
        assert claims["iss"] == url and claims["amr"] == ["pwd", "sms", "mfa"]
    finally:
        server.terminate()
        server.wait(10)
