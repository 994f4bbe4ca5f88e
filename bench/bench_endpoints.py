"""Benchmark of the provider's hot endpoints under gunicorn, against a bare signing app.

Usage (from the repository root)::

    python bench/bench_endpoints.py [--seconds N] [--concurrency C] [--warmup W] [--codes K]

What it does, in one run:

1. writes a production-like provider configuration to a temporary folder
   (``environment = "production"``, PostgreSQL in a bench database it creates,
   Redis db 14, secrets through ``env:``, one confidential client ``portal``
   authenticating with ``client_secret_basic``);
2. migrates the bench database, makes the signing key and pre-creates the
   authorization codes (grant + code rows written through the app's models,
   exactly what ``/authorize`` stores after a login: PKCE S256 challenge,
   nonce, redirect URI, scope, acr/amr);
3. starts the provider (``gunicorn wsgi:app``) and the bare app
   (``gunicorn 'bare_app:create_app()'``, one RS256 signature per request,
   key loaded once) with the same gunicorn settings: 2 sync workers;
4. for each of discovery, JWKS, the bare app, the token endpoint (the real
   code exchange: client authentication, code claim, PKCE verification,
   access + refresh + ID token) and userinfo (with the access tokens the
   exchange returned) runs a warm-up, then a timed phase with a pool of
   client threads, each with its own ``requests.Session``;
5. prints requests/s, p50/p99 latency, the gunicorn workers' CPU per request
   and the ratio code-exchange req/s / bare req/s (target >= 0.5);
6. stops both servers, drops the bench database and removes the temporary
   folder, also when something failed or the run was interrupted.

The provider runs with ``environment = "production"``: its issuer is https and
the benchmark talks to it as a TLS-terminating reverse proxy would, over
plain HTTP with ``X-Forwarded-Proto: https`` (``trusted_proxies = 1``).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime as dt
import hashlib
import itertools
import json
import os
import platform
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import requests

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
ISSUER = "https://idp.bench.example"
REDIRECT_URI = "https://portal.bench.example/callback"
PG_SERVER = "postgresql://postgres@127.0.0.1:5432"
KV_URL = "redis://127.0.0.1:6379/14"
SCOPE = "openid profile email"
# What a TLS-terminating reverse proxy in front of the provider adds.
PROXY_HEADERS = {
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Host": "idp.bench.example",
    "X-Forwarded-For": "192.0.2.7",
}
WORKERS = 2
THREADS = 1  # set from --threads
TARGET_RATIO = 0.5
PARSED_RESPONSES = 1000  # token responses parsed in full (the others: status and token names)


# ---------------------------------------------------------------------------
# Configuration and database
# ---------------------------------------------------------------------------


@dataclass
class Environment:
    """Everything the run creates and must remove."""

    tmp: Path
    db_name: str
    env: dict[str, str]
    config: Path
    portal_secret: str
    servers: list[subprocess.Popen] = field(default_factory=list)
    db_created: bool = False


def config_text(tmp: Path, db_name: str) -> str:
    return f"""\
# Written by bench/bench_endpoints.py; removed at the end of the run.
[provider]
environment = "production"
issuer = "{ISSUER}"
secret_key = "env:IDP_BENCH_SECRET_KEY"
instance_dir = "{tmp / "instance"}"
trusted_proxies = 1

[storage]
database_url = "{PG_SERVER}/{db_name}"
kv_url = "{KV_URL}"

[keys]
passphrase = "env:IDP_BENCH_KEYS_PASSPHRASE"
algorithm = "RS256"

[tokens]
# The codes are made before the timed phases start; 600 s (the maximum) keeps
# them valid for the whole run. The TTL is never read on the hot path.
authorization_code_ttl = 600

# Production refuses the development backends; nothing is sent during the run.
[sms]
backend = "http"
[sms.http]
url = "http://127.0.0.1:9/sms"

[mail]
backend = "smtp"
sender = "no-reply@bench.example"
[mail.smtp]
host = "127.0.0.1"
port = 2525
security = "none"

[demo]
enabled = false

[[clients]]
client_id = "portal"
name = "Customer portal"
type = "confidential"
token_endpoint_auth_method = "client_secret_basic"
client_secret = "env:IDP_BENCH_PORTAL_SECRET"
redirect_uris = ["{REDIRECT_URI}"]
first_party = true
"""


def make_environment() -> Environment:
    tmp = Path(tempfile.mkdtemp(prefix="idp-bench-"))
    db_name = f"idp_bench_{os.getpid()}_{secrets.token_hex(3)}"
    portal_secret = secrets.token_urlsafe(32)
    env = dict(os.environ)
    env.update(
        IDP_BENCH_SECRET_KEY=secrets.token_urlsafe(48),
        IDP_BENCH_KEYS_PASSPHRASE=secrets.token_urlsafe(24),
        IDP_BENCH_PORTAL_SECRET=portal_secret,
        BENCH_KEY_FILE=str(tmp / "bare-key.pem"),
    )
    env.pop("AUTHLIB_INSECURE_TRANSPORT", None)  # production: https only (through the proxy headers)
    config = tmp / "idp.toml"
    config.write_text(config_text(tmp, db_name))
    env["IDP_CONFIG"] = str(config)
    return Environment(tmp=tmp, db_name=db_name, env=env, config=config, portal_secret=portal_secret)


def _admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
        conn.execute(sql)


def create_database(benv: Environment) -> None:
    _admin(f'CREATE DATABASE "{benv.db_name}"')
    benv.db_created = True


def drop_database(benv: Environment) -> None:
    if benv.db_created:
        _admin(f'DROP DATABASE IF EXISTS "{benv.db_name}" WITH (FORCE)')
        benv.db_created = False


def write_bare_key(path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)  # the provider's RS256 key size
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path.write_bytes(pem)


# ---------------------------------------------------------------------------
# Authorization codes, made the way /authorize makes them
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PendingCode:
    code: str
    verifier: str
    nonce: str


def s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def portal_authorization(benv: Environment) -> str:
    """The ``Authorization`` header of the ``portal`` client (``client_secret_basic``)."""
    basic = base64.b64encode(f"portal:{benv.portal_secret}".encode()).decode()
    return f"Basic {basic}"


def exchange_form(item: PendingCode) -> dict[str, str]:
    """The form of the token request that redeems one prepared code."""
    return {
        "grant_type": "authorization_code",
        "code": item.code,
        "redirect_uri": REDIRECT_URI,
        "code_verifier": item.verifier,
    }


def provider_app(benv: Environment):
    """The provider as gunicorn will build it, in this process (for set-up and profiling)."""
    for name in ("IDP_BENCH_SECRET_KEY", "IDP_BENCH_KEYS_PASSPHRASE", "IDP_BENCH_PORTAL_SECRET"):
        os.environ[name] = benv.env[name]
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from idp import create_app

    return create_app(str(benv.config))


def prepare_provider(app, count: int) -> list[PendingCode]:
    """Migrate, make the signing key, one account and SSO session, and ``count`` unused codes."""
    from sqlalchemy import insert

    from idp.core.storage import Account, AuthorizationCode, Grant, SsoSession, db, upgrade
    from idp.oidc.server import digest

    upgrade(app)
    settings = app.extensions["idp.settings"]
    with app.app_context():
        app.extensions["idp.keys"].ensure_key()
        now = int(time.time())
        account = Account(
            sub=secrets.token_hex(16),
            username="bench.user",
            username_norm="bench.user",
            email="bench.user@bench.example",
            email_verified=True,
            phone="+32470000000",
            phone_verified=True,
            given_name="Bench",
            family_name="User",
            locale="fr",
            status="active",
        )
        db.session.add(account)
        db.session.flush()
        sso = SsoSession(
            id=secrets.token_urlsafe(24),
            account_id=account.id,
            auth_time=now,
            level="substantial",
            methods=["password", "sms"],
            amr=["pwd", "sms", "mfa"],
            expires_at=now + 12 * 3600,
        )
        db.session.add(sso)
        db.session.flush()
        pending, grants, codes = [], [], []
        for _ in range(count):
            code, verifier, nonce = (
                secrets.token_urlsafe(36),
                secrets.token_urlsafe(48),
                secrets.token_urlsafe(16),
            )
            grant_id = secrets.token_urlsafe(18)
            grants.append(
                dict(
                    id=grant_id,
                    account_id=account.id,
                    client_id="portal",
                    session_id=sso.id,
                    scope=SCOPE,
                    claims=None,
                    auth_time=now,
                    acr=settings.acr_for("substantial"),
                    amr=["pwd", "sms", "mfa"],
                    created_at=now,
                )
            )
            codes.append(
                dict(
                    code_hash=digest(code),
                    grant_id=grant_id,
                    client_id="portal",
                    redirect_uri=REDIRECT_URI,
                    nonce=nonce,
                    code_challenge=s256(verifier),
                    code_challenge_method="S256",
                    expires_at=now + settings.code_ttl,
                    used_at=None,
                )
            )
            pending.append(PendingCode(code, verifier, nonce))
        for start in range(0, count, 2000):
            db.session.execute(insert(Grant), grants[start : start + 2000])
            db.session.execute(insert(AuthorizationCode), codes[start : start + 2000])
        db.session.commit()
        db.engine.dispose()  # gunicorn's workers open their own connections
    return pending


# ---------------------------------------------------------------------------
# Servers
# ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def worker_class_args() -> list[str]:
    if THREADS > 1:
        return ["--worker-class", "gthread", "--threads", str(THREADS)]
    return ["--worker-class", "sync"]


def start_gunicorn(benv: Environment, name: str, spec: str, chdir: Path, probe: Callable[[str], bool]) -> str:
    port = free_port()
    log_path = benv.tmp / f"{name}.log"
    cmd = [
        sys.executable,
        "-m",
        "gunicorn",
        "--workers",
        str(WORKERS),
        *worker_class_args(),
        "--bind",
        f"127.0.0.1:{port}",
        "--chdir",
        str(chdir),
        "--log-level",
        "warning",
        "--timeout",
        "60",
        spec,
    ]
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            cmd, env=benv.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    benv.servers.append(proc)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited ({proc.returncode}):\n{log_path.read_text()[-3000:]}")
        with contextlib.suppress(requests.RequestException):
            if probe(url):
                return url
        time.sleep(0.2)
    raise RuntimeError(f"{name} did not answer within 60 s:\n{log_path.read_text()[-3000:]}")


def stop_servers(benv: Environment) -> None:
    for proc in benv.servers:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)  # the group of the gunicorn we started
    for proc in benv.servers:
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
    benv.servers.clear()


def worker_pids(master_pid: int) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, IndexError):
                stat = Path(f"/proc/{entry}/stat").read_text()
                if int(stat.rsplit(")", 1)[1].split()[1]) == master_pid:
                    pids.append(int(entry))
    return pids


def _cpu_ticks(stat: str) -> int:
    fields = stat.rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, IndexError):
            total += _cpu_ticks(Path(f"/proc/{pid}/stat").read_text())
    return total / os.sysconf("SC_CLK_TCK")


def postgres_cpu_seconds() -> float:
    """CPU time used so far by the processes of the PostgreSQL server on this machine."""
    total = 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = Path(f"/proc/{entry}/stat").read_text()
                if stat[stat.index("(") + 1 :].startswith("postgres"):
                    total += _cpu_ticks(stat)
    return total / os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------------------
# Load generator
# ---------------------------------------------------------------------------


class Exhausted(Exception):
    """The pool of single-use inputs (authorization codes) ran dry."""


@dataclass
class Result:
    name: str
    ok: int
    errors: int
    elapsed: float
    latencies: list[float]
    worker_cpu: float
    client_cpu: float
    database_cpu: float
    exhausted: bool
    first_error: str | None = None

    @property
    def rps(self) -> float:
        return self.ok / self.elapsed if self.elapsed else 0.0

    def percentile(self, p: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000


def run_load(
    name: str,
    call: Callable[[requests.Session], None],
    concurrency: int,
    warmup: float,
    seconds: float,
    master_pid: int,
) -> Result:
    """Warm up, then time ``seconds`` of ``call`` from ``concurrency`` threads.

    ``call`` raises on a failed request and :class:`Exhausted` when it has no input left.
    Counted: the requests started inside the timed window.
    """
    lock = threading.Lock()
    records: list[tuple[float, float, bool]] = []
    errors: list[str] = []
    exhausted = threading.Event()
    start_barrier = threading.Barrier(concurrency + 1)
    bounds = {}

    def worker() -> None:
        session = requests.Session()
        session.headers.update(PROXY_HEADERS)
        local = []
        start_barrier.wait()
        end = bounds["end"]
        while not exhausted.is_set():
            t0 = time.perf_counter()
            if t0 >= end:
                break
            try:
                call(session)
                ok = True
            except Exhausted:
                exhausted.set()
                break
            except Exception as exc:  # noqa: BLE001 - every failure counts as an error
                ok = False
                if not errors:
                    errors.append(f"{type(exc).__name__}: {exc}"[:300])
            local.append((t0, time.perf_counter(), ok))
        session.close()
        with lock:
            records.extend(local)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    for t in threads:
        t.start()
    begin = time.perf_counter()
    bounds["measure"] = begin + warmup
    bounds["end"] = begin + warmup + seconds
    cpu_mark: dict[str, float] = {}

    pids: list[int] = []

    def mark_cpu() -> None:
        pids[:] = worker_pids(master_pid)  # after the warm-up every worker has booted
        cpu_mark["worker"] = cpu_seconds(pids)
        cpu_mark["client"] = time.process_time()
        cpu_mark["database"] = postgres_cpu_seconds()

    timer = threading.Timer(warmup, mark_cpu)
    start_barrier.wait()
    timer.start()
    for t in threads:
        t.join()
    timer.cancel()
    if not cpu_mark:  # exhausted during the warm-up
        mark_cpu()
    worker_cpu = cpu_seconds(pids) - cpu_mark["worker"]
    client_cpu = time.process_time() - cpu_mark["client"]
    database_cpu = postgres_cpu_seconds() - cpu_mark["database"]
    measured = [r for r in records if r[0] >= bounds["measure"]]
    ok = [r for r in measured if r[2]]
    last = max((r[1] for r in measured), default=bounds["measure"])
    elapsed = max(1e-9, min(last, bounds["end"] + 60) - bounds["measure"])
    return Result(
        name=name,
        ok=len(ok),
        errors=len(measured) - len(ok),
        elapsed=elapsed,
        latencies=[r[1] - r[0] for r in ok],
        worker_cpu=worker_cpu,
        client_cpu=client_cpu,
        database_cpu=database_cpu,
        exhausted=exhausted.is_set(),
        first_error=errors[0] if errors else None,
    )


def merge(name: str, parts: list[Result]) -> Result:
    errors = [p.first_error for p in parts if p.first_error]
    return Result(
        name=name,
        ok=sum(p.ok for p in parts),
        errors=sum(p.errors for p in parts),
        elapsed=sum(p.elapsed for p in parts),
        latencies=[x for p in parts for x in p.latencies],
        worker_cpu=sum(p.worker_cpu for p in parts),
        client_cpu=sum(p.client_cpu for p in parts),
        database_cpu=sum(p.database_cpu for p in parts),
        exhausted=any(p.exhausted for p in parts),
        first_error=errors[0] if errors else None,
    )


def expect(response: requests.Response, status: int = 200) -> requests.Response:
    if response.status_code != status:
        raise RuntimeError(f"HTTP {response.status_code}: {response.text[:200]}")
    return response


# ---------------------------------------------------------------------------
# The phases
# ---------------------------------------------------------------------------


def check_id_token(idp_url: str, token_response: dict, pending: PendingCode) -> str:
    """Validate one ID token the way a relying party would: signature, iss, aud, nonce, at_hash."""
    from joserfc import jwt
    from joserfc.jwk import KeySet

    jwks = expect(requests.get(idp_url + "/jwks.json", headers=PROXY_HEADERS, timeout=10)).json()
    token = jwt.decode(token_response["id_token"], KeySet.import_key_set(jwks), algorithms=["RS256"])
    claims = token.claims
    digest = hashlib.sha256(token_response["access_token"].encode()).digest()
    at_hash = base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()
    problems = [
        name
        for name, good in (
            ("iss", claims.get("iss") == ISSUER),
            ("aud", claims.get("aud") == "portal"),
            ("nonce", claims.get("nonce") == pending.nonce),
            ("at_hash", claims.get("at_hash") == at_hash),
            ("exp", claims.get("exp", 0) > time.time()),
        )
        if not good
    ]
    if problems:
        raise RuntimeError(f"the ID token is wrong: {', '.join(problems)}")
    kid = token.header["kid"]
    return f"ID token checked (RS256 signature with JWKS, iss, aud, nonce, at_hash, exp; kid {kid})"


def run_phases(
    benv: Environment, args, pending: list[PendingCode], idp_url: str, bare_url: str
) -> tuple[list[Result], str]:

    def discovery(s):
        expect(s.get(idp_url + "/.well-known/openid-configuration", timeout=30))

    def jwks(s):
        expect(s.get(idp_url + "/jwks.json", timeout=30))

    def bare(s):
        expect(s.post(bare_url + "/token", timeout=30))

    # The load generator does per request only what the HTTP exchange needs, as for
    # the bare app: request bodies and the Authorization header are built here,
    # before the timed phases, and a response is checked by its status and the
    # names of the three tokens; only the first responses are parsed in full
    # (their access tokens feed the userinfo phase, one of them the ID token check).
    token_headers = {
        "Authorization": portal_authorization(benv),
        "Content-Type": "application/x-www-form-urlencoded",
    }
    bodies = iter([(urllib.parse.urlencode(exchange_form(item)), item) for item in pending])
    codes_lock = threading.Lock()
    access_tokens: list[str] = []
    sample: dict = {}

    def exchange(s):
        with codes_lock:
            body, item = next(bodies, (None, None))
        if body is None:
            raise Exhausted
        content = expect(s.post(idp_url + "/token", headers=token_headers, data=body, timeout=30)).content
        if not all(name in content for name in (b'"access_token"', b'"id_token"', b'"refresh_token"')):
            raise RuntimeError(f"incomplete token response: {content[:200]!r}")
        if len(access_tokens) < PARSED_RESPONSES:
            parsed = json.loads(content)
            access_tokens.append(parsed["access_token"])
            sample.setdefault("pair", (parsed, item))

    counter = itertools.count()

    def userinfo(s):
        token = access_tokens[next(counter) % len(access_tokens)]
        body = expect(
            s.get(idp_url + "/userinfo", headers={"Authorization": f"Bearer {token}"}, timeout=30)
        ).json()
        if "email" not in body:
            raise RuntimeError(f"userinfo without the email scope's claims: {sorted(body)}")

    idp_pid, bare_pid = benv.servers[0].pid, benv.servers[1].pid

    def phase(name, call, pid, seconds=args.seconds, warmup=args.warmup):
        print(f"  running {name} ...", file=sys.stderr, flush=True)
        return run_load(
            name, call, master_pid=pid, concurrency=args.concurrency, warmup=warmup, seconds=seconds
        )

    results = [phase("discovery", discovery, idp_pid), phase("jwks", jwks, idp_pid)]
    # The two figures of the ratio alternate in rounds, so a change in the
    # machine's other load during the run weighs on both alike.
    parts: dict[str, list[Result]] = {"bare RS256 app": [], "token (code exchange)": []}
    # The order flips every round (bare, token, token, bare, ...): a phase that runs
    # second gains or loses from what the first left behind, and so does each alike.
    pair = [("bare RS256 app", bare, bare_pid), ("token (code exchange)", exchange, idp_pid)]
    for i in range(args.rounds):
        warmup = args.warmup if i == 0 else min(args.warmup, 0.5)
        seconds = args.seconds / args.rounds
        for name, call, pid in pair if i % 2 == 0 else reversed(pair):
            parts[name].append(phase(name, call, pid, seconds, warmup))
    results += [merge(name, rounds) for name, rounds in parts.items()]
    if not access_tokens:
        raise RuntimeError("no access token came out of the code exchange phase")
    results.append(phase("userinfo", userinfo, idp_pid))
    if "pair" not in sample:
        raise RuntimeError("no code exchange succeeded")
    body, item = sample["pair"]
    return results, check_id_token(idp_url, body, item)


# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------


def machine_notes() -> list[str]:
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    import gunicorn
    import psycopg

    with psycopg.connect(f"{PG_SERVER}/postgres") as conn:
        pg = conn.execute("SHOW server_version").fetchone()[0]
    return [
        f"date: {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"machine: {os.cpu_count()} CPU(s) ({cpu}), {platform.system()} {platform.release()},"
        f" load average before the run {os.getloadavg()[0]:.2f}",
        f"python {platform.python_version()}, gunicorn {gunicorn.__version__}, PostgreSQL {pg},"
        f" Redis at {KV_URL}",
    ]


def report(results: list[Result], args, notes: list[str], check: str, codes: int) -> float:
    by_name = {r.name: r for r in results}
    width = max(len(r.name) for r in results)
    lines = [
        "",
        "IdP endpoint benchmark",
        *notes,
        f"servers: gunicorn --workers {WORKERS} "
        + (f"--worker-class gthread --threads {THREADS}" if THREADS > 1 else "--worker-class sync")
        + " (provider: wsgi:app,"
        " environment=production, PostgreSQL, Redis; bare: bare_app:create_app())",
        f"load: {args.concurrency} client threads (requests.Session each), {args.warmup:g} s warm-up +"
        f" {args.seconds:g} s timed per endpoint (bare app and code exchange alternating in {args.rounds}"
        f" rounds, order flipped each round); {codes} authorization codes made beforehand",
        f"NOTE: client, both gunicorns and PostgreSQL share the same {os.cpu_count()} cores;"
        " the Python client itself uses a good part of them (client CPU column), so absolute"
        " figures are lower than on a dedicated server and the ratio is the meaningful number.",
        "NOTE: provider in production mode behind a simulated TLS proxy (X-Forwarded-Proto: https,"
        " trusted_proxies = 1); gunicorn sync workers close the connection after each response.",
        "",
        f"{'endpoint':<{width}}  {'req/s':>8}  {'p50 ms':>7}  {'p99 ms':>7}  {'requests':>8}  {'errors':>6}"
        f"  {'worker CPU ms/req':>17}  {'PostgreSQL CPU ms/req':>21}  {'client CPU %':>12}",
    ]
    for r in results:
        per_req = r.worker_cpu / r.ok * 1000 if r.ok else float("nan")
        db_per_req = r.database_cpu / r.ok * 1000 if r.ok else float("nan")
        client = r.client_cpu / r.elapsed * 100 / (os.cpu_count() or 1)
        lines.append(
            f"{r.name:<{width}}  {r.rps:8.1f}  {r.percentile(50):7.2f}  {r.percentile(99):7.2f}  {r.ok:8d}"
            f"  {r.errors:6d}  {per_req:17.2f}  {db_per_req:21.2f}  {client:11.0f}%"
            + ("  (ran out of codes: timed phase ended early)" if r.exhausted else "")
        )
        if r.first_error:
            lines.append(f"{'':<{width}}  first error: {r.first_error}")
    token, bare = by_name["token (code exchange)"], by_name["bare RS256 app"]
    ratio = token.rps / bare.rps if bare.rps else 0.0
    verdict = "meets" if ratio >= TARGET_RATIO else "MISSES"
    lines += [
        "",
        f"ratio code exchange / bare app: {token.rps:.1f} / {bare.rps:.1f} = {ratio:.2f}"
        f"  ({verdict} the target of >= {TARGET_RATIO})",
        "server CPU per request (gunicorn workers + PostgreSQL):"
        f" code exchange {(token.worker_cpu + token.database_cpu) / max(token.ok, 1) * 1000:.2f} ms,"
        f" bare app {(bare.worker_cpu + bare.database_cpu) / max(bare.ok, 1) * 1000:.2f} ms",
        check,
    ]
    print("\n".join(lines), flush=True)
    return ratio


# ---------------------------------------------------------------------------


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="timed seconds per endpoint (default 10)")
    parser.add_argument("--concurrency", type=int, default=4, help="client threads (default 4)")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="threads per gunicorn worker for BOTH servers (gthread when > 1; default 1: sync workers)",
    )
    parser.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds per endpoint (default 2)")
    parser.add_argument(
        "--rounds",
        type=int,
        default=2,
        help="the bare app and the code exchange alternate in this many rounds of seconds/rounds (default 2)",
    )
    parser.add_argument(
        "--codes",
        type=int,
        default=None,
        help="authorization codes to make beforehand (default: enough for 1000 exchanges/s)",
    )
    args = parser.parse_args(argv)
    global THREADS
    THREADS = args.threads
    if args.seconds <= 0 or args.warmup < 0 or args.concurrency < 1 or args.rounds < 1:
        parser.error("--seconds must be > 0, --warmup >= 0, --concurrency >= 1, --rounds >= 1")
    if args.codes is None:
        args.codes = max(1000, int(1000 * (args.seconds + args.warmup + 0.5 * args.rounds)))
    return args


def _raise_on_signal(signum, _frame):
    raise SystemExit(128 + signum)


def main(argv=None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_on_signal)
    signal.signal(signal.SIGHUP, _raise_on_signal)
    benv = make_environment()
    try:
        notes = machine_notes()
        print(f"bench database {benv.db_name}, temporary folder {benv.tmp}", file=sys.stderr, flush=True)
        create_database(benv)
        write_bare_key(Path(benv.env["BENCH_KEY_FILE"]))
        print(f"  migrating and making {args.codes} authorization codes ...", file=sys.stderr, flush=True)
        pending = prepare_provider(provider_app(benv), args.codes)
        idp_url = start_gunicorn(
            benv,
            "provider",
            "wsgi:app",
            REPO,
            lambda url: requests.get(url + "/jwks.json", headers=PROXY_HEADERS, timeout=2).status_code == 200,
        )
        bare_url = start_gunicorn(
            benv,
            "bare",
            "bare_app:create_app()",
            BENCH_DIR,
            lambda url: requests.post(url + "/token", timeout=2).status_code == 200,
        )
        results, check = run_phases(benv, args, pending, idp_url, bare_url)
        report(results, args, notes, check, args.codes)
        return 0
    finally:
        stop_servers(benv)
        drop_database(benv)
        shutil.rmtree(benv.tmp, ignore_errors=True)
        print(
            f"cleaned up: servers stopped, database {benv.db_name} dropped, {benv.tmp} removed",
            file=sys.stderr,
            flush=True,
        )


if __name__ == "__main__":
    sys.exit(main())
