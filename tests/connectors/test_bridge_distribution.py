"""The eID bridge is its own small distribution (``bridge/``): alone, installable, frozen to one file.

* Its code imports nothing of the provider, and signs exactly what the provider's verifier checks.
* Installed alone into a fresh virtual environment from PyPI it brings PyKCS11 and cryptography,
  never Flask, Flask-SQLAlchemy, psycopg or Authlib, and that installed bridge serves a login
  against SoftHSM2 (marker ``pypi``; skipped without network unless ``CI=true``).
* The one-file executable built by ``bridge/build.py`` (PyInstaller; ``.ci/run`` builds it on Linux
  and points ``IDP_EID_BRIDGE_BINARY`` at it) completes the same login.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest
from idp_eid_bridge import signing

from connectors.eid import token as verifier_token
from tests.login import test_eid_login as eid_login
from tests.support.eid_pki import (  # noqa: F401 (the "responder", "pki", "card" and "http" fixtures)
    card_fixture,
    http_fixture,
    pki_fixture,
    responder_fixture,
)

ROOT = Path(__file__).resolve().parents[2]
BRIDGE = ROOT / "bridge"
SERVER_ONLY = ("flask", "flask-sqlalchemy", "sqlalchemy", "psycopg", "psycopg-binary", "authlib", "alembic")

fresh_responder, eid_config, pin_prompt = (
    eid_login.fresh_responder,
    eid_login.eid_config,
    eid_login.pin_prompt,
)


def _ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


# -- alone ------------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", sorted(verifier_token.HASHES))
def test_the_bridge_signs_exactly_what_the_verifier_checks(algorithm):
    origin, challenge = "https://login.example.be", "q" * 43 + "="
    assert signing.signed_payload(origin, challenge, algorithm) == verifier_token.signed_payload(
        origin, challenge, algorithm
    )
    assert signing.FORMAT == verifier_token.FORMAT


def test_the_bridge_imports_nothing_of_the_provider():
    imported = set()
    for path in (BRIDGE / "src").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                imported |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                imported.add(node.module.split(".")[0])
    third_party = {
        name for name in imported if name not in sys.stdlib_module_names and name != "idp_eid_bridge"
    }
    assert third_party == {"PyKCS11", "cryptography"}


# -- installed from PyPI into a fresh environment -----------------------------------------------


@pytest.fixture(scope="module")
def installed_bridge(tmp_path_factory) -> Path:
    """``pip install bridge/`` into a new venv (its dependencies from PyPI); the venv's folder."""
    env_dir = tmp_path_factory.mktemp("bridge-venv")
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    done = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(BRIDGE)],
        capture_output=True,
        text=True,
        timeout=600,
        env={k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PIP_NO_INDEX")},
    )
    if done.returncode != 0:
        reason = f"pip install of the bridge failed (no PyPI?): {done.stderr[-400:]}"
        if _ci():
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    return env_dir


@pytest.mark.pypi
def test_installed_alone_the_bridge_brings_none_of_the_servers_dependencies(installed_bridge):
    listed = subprocess.run(
        [str(installed_bridge / "bin" / "python"), "-m", "pip", "list", "--format=json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    names = {p["name"].lower() for p in json.loads(listed.stdout)}
    assert {"idp-eid-bridge", "pykcs11", "cryptography"} <= names
    assert not names & set(SERVER_ONLY), names & set(SERVER_ONLY)
    assert "idp" not in names


@pytest.mark.pypi
@pytest.mark.softhsm
def test_the_installed_bridge_serves_a_login_against_softhsm(
    installed_bridge, make_app, eid_config, card, tmp_path, pin_prompt, http
):
    command = [str(installed_bridge / "bin" / "idp-eid-bridge")]
    eid_login.bridge_login(make_app, eid_config, card, tmp_path, pin_prompt, http, command=command)


# -- the one-file build ----------------------------------------------------------------------


@pytest.mark.softhsm
def test_the_one_file_build_completes_a_login(make_app, eid_config, card, tmp_path, pin_prompt, http):
    binary = os.environ.get("IDP_EID_BRIDGE_BINARY")
    if not binary:
        reason = "IDP_EID_BRIDGE_BINARY is not set (python bridge/build.py makes the binary)"
        if _ci():
            pytest.fail("CI=true but " + reason, pytrace=False)
        pytest.skip(reason)
    assert subprocess.run(
        [binary, "--version"], capture_output=True, text=True, timeout=60
    ).stdout.startswith("idp-eid-bridge ")
    eid_login.bridge_login(make_app, eid_config, card, tmp_path, pin_prompt, http, command=[binary])


# -- what the card says of the PIN ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "left"),
    [(0, None), ("COUNT_LOW", 2), ("COUNT_LOW|FINAL_TRY", 1), ("FINAL_TRY", 1), ("LOCKED", 0)],
)
def test_pin_tries_left_come_from_the_token_flags(flags, left):
    from idp_eid_bridge.card import tries_left
    from PyKCS11 import PyKCS11 as p11

    value = 0
    for name in str(flags).split("|") if flags else []:
        value |= getattr(p11, f"CKF_USER_PIN_{name}")
    assert tries_left(p11, value) == left
