"""Installed, not only checked out: the wheel in a fresh virtual environment serves production.

The test builds the wheel from the sources, installs it into a new virtual
environment, and runs what an operator runs from there, with nothing of the
checkout on the path: ``idp db upgrade``, ``idp users create``, then
``gunicorn -c python:idp.gunicorn_conf idp.wsgi:app`` in production mode
against PostgreSQL and Redis. Discovery, ``/readyz``, ``/metrics`` and a whole
code flow (password, SMS code through an HTTP gateway, token) must work, and
gunicorn's standard error carries the INFO lines of the default logging.

To stay within a minute, the new environment gets its dependencies from the
running one (a ``.pth`` line, read after its own site-packages) instead of
downloading them; the wheel itself is installed with ``--no-deps``, and
``pip check`` proves its declared requirements are met. That every import of
the package is declared is checked on its own below.
"""

from __future__ import annotations

import ast
import configparser
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import requests

from tests.conftest import free_port
from tests.fakes.sms_gateway import FakeSmsGateway
from tests.support.own_services import OwnRedis
from tests.support.production import (
    PASSWORD,
    PHONE,
    SECRETS,
    Browser,
    Database,
    Gunicorn,
    clean_env,
    code_of,
    redeem,
    tls_pair,
    write_config,
)

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(
    not os.environ.get("IDP_TEST_DATABASE_URL"), reason="needs PostgreSQL (IDP_TEST_DATABASE_URL)"
)


def _sources(dest: Path) -> Path:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, (n.decode() for n in listed)):
        source = ROOT / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    return dest


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The bin folder of a fresh virtual environment with the built wheel installed."""
    work = tmp_path_factory.mktemp("wheel")
    src = _sources(work / "src")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "build",
            "--wheel",
            "--no-isolation",
            "--outdir",
            str(work / "dist"),
            str(src),
        ],
        check=True,
        capture_output=True,
    )
    [wheel] = (work / "dist").glob("idp-*.whl")
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next((venv / "lib").glob("python3*/site-packages"))
    (site / "zz-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    python = venv / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", str(wheel)],
        check=True,
        capture_output=True,
        env=clean_env(),
    )
    return venv / "bin"


def run(bin_dir: Path, *args: str, env: dict, cwd: Path, stdin: str | None = None) -> str:
    result = subprocess.run(
        [str(bin_dir / args[0]), *args[1:]], env=env, cwd=cwd, input=stdin, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_the_package_comes_from_the_wheel_and_its_requirements_are_met(installed, tmp_path):
    env = clean_env()
    where = run(installed, "python", "-c", "import idp; print(idp.__file__)", env=env, cwd=tmp_path)
    assert where.startswith(str(installed.parent)), where
    checked = subprocess.run(
        [str(installed / "python"), "-m", "pip", "check"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert "idp " not in checked.stdout, checked.stdout  # nothing idp requires is missing


def _declared() -> set[str]:
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    lines = config["options"]["install_requires"].split("\n")
    return {re.split(r"[\s<>=!~;\[]", r.strip(), maxsplit=1)[0].lower() for r in lines if r.strip()}


def _imports(path: Path) -> set[str]:
    tops = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            tops |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            tops.add(node.module.split(".")[0])
    return tops


def test_every_import_of_the_package_is_a_declared_requirement():
    declared = {name.replace("_", "-") for name in _declared()}
    dists = importlib.metadata.packages_distributions()
    own = {"idp", "connectors", "__future__", "tests"}
    missing = set()
    for path in list((ROOT / "idp").rglob("*.py")) + list((ROOT / "connectors").rglob("*.py")):
        if path.name in ("bridge.py", "card.py", "pin_dialog.py") or "migrations" in path.parts:
            continue  # the eID bridge's own extra (PyKCS11, eidreader); Alembic scripts
        for top in _imports(path) - set(sys.stdlib_module_names) - own:
            names = {d.lower().replace("_", "-") for d in dists.get(top, [top])}
            if not names & declared:
                missing.add((top, str(path.relative_to(ROOT))))
    assert not missing, sorted(missing)


def test_gunicorn_serves_production_from_the_installed_wheel(installed, tmp_path):
    cert, key = tls_pair(tmp_path)
    database = Database(os.environ["IDP_TEST_DATABASE_URL"])
    redis = OwnRedis().start()
    gateway = FakeSmsGateway().start()
    server = None
    try:
        port = free_port()
        issuer = f"https://127.0.0.1:{port}"
        config = write_config(tmp_path, issuer, database.url, redis.url, gateway.url)
        env = clean_env(IDP_CONFIG=str(config), SMS_TOKEN=gateway.auth_value)
        run(installed, "idp", "db", "upgrade", env=env, cwd=tmp_path)
        args = ("idp", "users", "create", "alice", "--email", "alice@example.com", "--phone", PHONE)
        run(installed, *args, "--password-stdin", env=env, cwd=tmp_path, stdin=PASSWORD + "\n")
        database.execute("UPDATE accounts SET terms_version = '2026-01'")  # the terms were accepted

        gunicorn = [str(installed / "python"), "-m", "gunicorn"]
        server = Gunicorn(gunicorn, env, tmp_path, cert, key, workers=1, port=port)
        verify = str(cert)
        discovery = requests.get(server.url + "/.well-known/openid-configuration", verify=verify, timeout=10)
        assert discovery.status_code == 200 and discovery.json()["issuer"] == issuer
        ready = requests.get(server.url + "/readyz", verify=verify, timeout=10)
        assert ready.status_code == 200, ready.text
        assert set(ready.json()["checks"]) >= {"database", "shared_store", "signing_key"}

        browser = Browser(cert)
        resp, verifier = browser.authorize(server.url)
        assert resp.status_code == 302 and "/login/" in resp.headers["Location"], resp.text
        resp = browser.password_step(server.url, resp.headers["Location"])
        assert resp.status_code == 303 and resp.headers["Location"].endswith("/code"), resp.text
        sms = re.search(r"\b(\d{6})\b", gateway.next_text(PHONE)).group(1)
        resp = browser.code_step(server.url, resp.headers["Location"], sms)
        assert resp.status_code == 303, resp.text
        resp = browser.get(server.url, resp.headers["Location"])
        assert resp.status_code == 302, resp.text
        tokens = redeem(server.url, cert, code_of(resp.headers["Location"]), verifier)
        assert tokens.status_code == 200, tokens.text
        assert {"id_token", "access_token", "refresh_token"} <= set(tokens.json())

        metrics = requests.get(
            server.url + "/metrics",
            headers={"Authorization": f"Bearer {SECRETS['IDP_METRICS_TOKEN']}"},
            verify=verify,
            timeout=10,
        )
        assert metrics.status_code == 200
        assert 'idp_tokens_issued_total{grant_type="authorization_code"} 1.0' in metrics.text
        assert requests.get(server.url + "/metrics", verify=verify, timeout=10).status_code == 403
    finally:
        if server is not None:
            server.stop()
        gateway.stop()
        redis.close()
        database.drop()
    log = server.output()
    assert " INFO idp.access " in log and "event=login outcome=success" in log
    assert PASSWORD not in log and sms not in log
