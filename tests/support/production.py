"""Run the provider as an operator does: production mode, gunicorn, PostgreSQL, Redis, https.

Used by the installed-wheel test and the two-instance test. Each test gets
its own PostgreSQL database on the shared server (dropped afterwards) and its
own Redis server; gunicorn serves https itself (``IDP_TLS_CERT``) with a
certificate made here, so the production rules (an https issuer, ``Secure``
``__Host-`` cookies) hold as they would behind a proxy.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import re
import secrets
import signal
import subprocess
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import requests
import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.conftest import PASSWORD, PORTAL_SECRET, free_port, pkce_pair

REDIRECT = "https://portal.example.com/callback"
PHONE = "+32470123456"
SECRETS = {
    "IDP_SECRET_KEY": "s" * 48,
    "IDP_KEYS_PASSPHRASE": "production test keys passphrase",
    "IDP_TEST_PORTAL_SECRET": PORTAL_SECRET,
    "IDP_METRICS_TOKEN": "t" * 40,
    "SMS_TOKEN": "replaced by the fake gateway's auth value",
}


def tls_pair(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (both the trust anchor and the server's)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
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


class Database:
    """A database of the test's own on the shared PostgreSQL server."""

    def __init__(self, base_url: str) -> None:
        self.name = f"idp_prod_{secrets.token_hex(4)}"
        self._admin = sa.create_engine(
            base_url.replace("postgresql://", "postgresql+psycopg://", 1), isolation_level="AUTOCOMMIT"
        )
        with self._admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{self.name}"'))
        self.url = urlsplit(base_url)._replace(path="/" + self.name).geturl()

    def execute(self, statement: str, **params) -> None:
        engine = sa.create_engine(self.url.replace("postgresql://", "postgresql+psycopg://", 1))
        with engine.begin() as conn:
            conn.execute(sa.text(statement), params)
        engine.dispose()

    def drop(self) -> None:
        with self._admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
        self._admin.dispose()


def write_config(folder: Path, issuer: str, database_url: str, redis_url: str, sms_url: str, **extra) -> Path:
    """A production configuration: every secret from the environment, nothing in development mode."""
    tables = {
        "otp": "[otp]\npassword_max_failures = 3\n",
        "keys": '[keys]\npassphrase = "env:IDP_KEYS_PASSPHRASE"\n',
    }
    tables.update(extra)
    text = f"""
[provider]
issuer = "{issuer}"
environment = "production"
secret_key = "env:IDP_SECRET_KEY"
instance_dir = "{folder}"

[storage]
database_url = "{database_url}"
kv_url = "{redis_url}"

{tables["keys"]}
[passwords.argon2]
time_cost = 2
memory_cost = 19456
parallelism = 1

[sms]
backend = "http"
sender = "MyServices"
[sms.http]
url = "{sms_url}"
auth_value = "env:SMS_TOKEN"

[mail]
backend = "smtp"
sender = "no-reply@example.com"
[mail.smtp]
host = "127.0.0.1"
port = 2
security = "none"

[metrics]
token = "env:IDP_METRICS_TOKEN"

{tables["otp"]}
[[clients]]
client_id = "portal"
type = "confidential"
client_secret = "env:IDP_TEST_PORTAL_SECRET"
redirect_uris = ["{REDIRECT}"]
first_party = true
"""
    path = folder / "idp.toml"
    path.write_text(text)
    return path


def clean_env(**extra: str) -> dict[str, str]:
    """The environment of a deployed process: no PYTHONPATH (nothing from the checkout), the secrets."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "AUTHLIB_INSECURE_TRANSPORT")}
    env.update(SECRETS)
    env.update(extra)
    return env


class Gunicorn:
    """One provider instance: ``gunicorn -c python:idp.gunicorn_conf idp.wsgi:app`` on its own port."""

    def __init__(
        self,
        command: list[str],
        env: dict[str, str],
        cwd: Path,
        cert: Path,
        key: Path,
        workers: int = 2,
        port: int | None = None,
    ) -> None:
        self.port = port or free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        self.log = cwd / f"gunicorn-{self.port}.log"
        self._cert = cert
        env = {
            **env,
            "IDP_BIND": f"127.0.0.1:{self.port}",
            "WEB_CONCURRENCY": str(workers),
            "IDP_TLS_CERT": str(cert),
            "IDP_TLS_KEY": str(key),
            "PROMETHEUS_MULTIPROC_DIR": str(cwd / f"metrics-{self.port}"),
        }
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [*command, "-c", "python:idp.gunicorn_conf", "idp.wsgi:app"],
                env=env,
                cwd=cwd,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self._wait_until_up()

    def _wait_until_up(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited:\n{self.log.read_text()}")
            try:
                if requests.get(self.url + "/healthz", verify=str(self._cert), timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"gunicorn did not answer:\n{self.log.read_text()}")

    def output(self) -> str:
        return self.log.read_text()

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)  # gunicorn's quick shutdown; SIGTERM waits for the workers
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


class Browser:
    """A person's browser, talking to whichever instance a step names (cookies go to both)."""

    def __init__(self, cert: Path) -> None:
        self.http = requests.Session()
        self.http.headers["Accept-Language"] = "en"
        self.verify = str(cert)  # per request: REQUESTS_CA_BUNDLE would win over Session.verify

    def get(self, base: str, location: str, **kw) -> requests.Response:
        parts = urlsplit(location)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        return self.http.get(base + path, allow_redirects=False, timeout=30, verify=self.verify, **kw)

    def post(self, base: str, location: str, data: dict) -> requests.Response:
        url = base + urlsplit(location).path
        return self.http.post(url, data=data, allow_redirects=False, timeout=30, verify=self.verify)

    def authorize(self, base: str) -> tuple[requests.Response, str]:
        verifier, challenge = pkce_pair()
        params = {
            "response_type": "code",
            "client_id": "portal",
            "redirect_uri": REDIRECT,
            "scope": "openid profile",
            "state": secrets.token_urlsafe(8),
            "nonce": secrets.token_urlsafe(8),
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
        resp = self.get(base, "/authorize", params=params)
        return resp, verifier

    def password_step(self, base: str, login_location: str, password: str = PASSWORD) -> requests.Response:
        tx_path = urlsplit(login_location).path
        page = self.get(base, tx_path + "/password")
        assert page.status_code == 200, page.text
        return self.post(
            base,
            tx_path + "/password",
            {"csrf_token": csrf(page.text), "username": "alice", "password": password},
        )

    def code_step(self, base: str, code_location: str, sms_code: str) -> requests.Response:
        page = self.get(base, code_location)
        assert page.status_code == 200, page.text
        return self.post(base, code_location, {"csrf_token": csrf(page.text), "code": sms_code})


def csrf(html: str) -> str:
    m = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html) or re.search(
        r'value="([^"]+)"[^>]*name="csrf_token"', html
    )
    assert m, "no CSRF token on the page"
    return m.group(1)


def code_of(location: str) -> str:
    query = parse_qs(urlsplit(location).query)
    assert "code" in query, location
    return query["code"][0]


def redeem(base: str, cert: Path, code: str, verifier: str) -> requests.Response:
    return requests.post(
        base + "/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "code_verifier": verifier,
        },
        auth=("portal", PORTAL_SECRET),
        verify=str(cert),
        timeout=30,
    )
