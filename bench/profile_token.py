"""Where a code exchange spends its time: cProfile of the provider's endpoints, in process.

Usage (from the repository root)::

    python bench/profile_token.py [--requests N] [--top K]

Builds the same production-like provider as ``bench_endpoints.py`` (temporary
PostgreSQL database, Redis db 14, the ``portal`` client), pre-creates ``N``
authorization codes and redeems them through Flask's test client with the same
headers the benchmark sends (no HTTP server: gunicorn and the socket are out of
the picture, everything else is the real ``/token`` path). It prints

* time per exchange and its split by library (exclusive time: SQLAlchemy,
  psycopg, joserfc, cryptography, Authlib, Flask/Werkzeug, the provider...),
* the cumulative time of the provider's own steps (file:function, % of the total),
* round trips to PostgreSQL per exchange, counted at the driver (psycopg),
* checks of the rules of issue 2: no Argon2 on client secrets, no PEM key
  loaded per request, discovery and JWKS served without JSON serialisation,

then the same bare RS256 signing as ``bare_app.py`` for comparison, and the CPU
per request of both without the profiler. The
database and the temporary folder are removed at the end, also on failure.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import shutil
import signal
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_endpoints as bench  # noqa: E402 - the folder is put on the path just above

LIBRARIES = (
    ("sqlalchemy", "/sqlalchemy/"),
    ("psycopg", "/psycopg"),
    ("joserfc", "/joserfc/"),
    ("cryptography", "/cryptography/"),
    ("authlib", "/authlib/"),
    ("flask_sqlalchemy", "/flask_sqlalchemy/"),
    (
        "flask/werkzeug/jinja/babel",
        ("/flask/", "/werkzeug/", "/jinja2/", "/flask_babel/", "/babel/", "/flask_wtf/"),
    ),
    ("provider (idp/)", "/idp/"),
    ("json", "/json/"),
    ("logging", "/logging/"),
)

# The provider's own steps on the /token path (cumulative time).
STEPS = (
    ("idp/token.py", "token"),
    ("idp/clients.py", "check_client_secret"),
    ("idp/oauth.py", "query_authorization_code"),
    ("idp/token_store.py", "claim_code"),
    ("idp/core/storage.py", "first_row_autocommit"),
    ("idp/oauth.py", "authenticate_user"),
    ("idp/oauth.py", "generate"),
    ("idp/oauth.py", "access_token"),
    ("idp/oauth.py", "save"),
    ("idp/oauth.py", "process_token"),
    ("idp/oauth.py", "id_token"),
    ("idp/keys.py", "sign"),
    ("idp/keys.py", "active"),
    ("idp/keys.py", "refresh"),
    ("idp/oauth.py", "handle_response"),
    ("idp/sessions.py", "open_session"),
    ("idp/sessions.py", "save_session"),
    ("idp/security.py", "_headers"),
    ("joserfc/jwt.py", "encode"),
    ("RSAPrivateKey", "sign"),  # cryptography's RSA signature (a builtin)
    ("sqlalchemy/pool/base.py", "connect"),
    ("sqlalchemy/orm/session.py", "execute"),
    ("sqlalchemy/orm/session.py", "commit"),
    ("psycopg/connection.py", "execute"),
    ("psycopg/cursor.py", "execute"),
)


def library_of(filename: str) -> str:
    for name, marks in LIBRARIES:
        for mark in (marks,) if isinstance(marks, str) else marks:
            if mark in filename:
                return name
    return "builtins/other" if filename.startswith("~") or "<" in filename else "other Python"


def find(stats: pstats.Stats, file_part: str, func: str) -> tuple[int, float, float]:
    """(calls, tottime, cumtime) summed over functions named ``func`` in files containing ``file_part``."""
    calls, tt, ct = 0, 0.0, 0.0
    for (filename, _line, name), (_cc, nc, t, c, _callers) in stats.stats.items():
        if filename == "~":  # a builtin, named like "<method 'sign' of '...RSAPrivateKey' objects>"
            found = f"'{func}'" in name and file_part in name
        else:
            found = name == func and file_part in filename
        if found:
            calls, tt, ct = calls + nc, tt + t, ct + c
    return calls, tt, ct


def calls_matching(stats: pstats.Stats, *needles: str) -> int:
    total = 0
    for (filename, _line, name), (_cc, nc, *_rest) in stats.stats.items():
        if any(n in f"{filename}:{name}" for n in needles):
            total += nc
    return total


def profile(fn, n: int) -> tuple[pstats.Stats, float]:
    prof = cProfile.Profile()
    start = time.perf_counter()
    prof.enable()
    for _ in range(n):
        fn()
    prof.disable()
    wall = time.perf_counter() - start
    return pstats.Stats(prof), wall


def print_library_split(stats: pstats.Stats, n: int) -> None:
    per_lib: dict[str, float] = defaultdict(float)
    for (filename, _line, _name), (_cc, _nc, tt, _ct, _callers) in stats.stats.items():
        per_lib[library_of(filename)] += tt
    total = sum(per_lib.values())
    print(f"  exclusive time by library (profiled total {total / n * 1000:.2f} ms per request):")
    for name, t in sorted(per_lib.items(), key=lambda kv: -kv[1]):
        print(f"    {name:<28} {t / n * 1000:7.3f} ms  {t / total * 100:5.1f} %")


def print_steps(stats: pstats.Stats, n: int, total: float) -> None:
    print("  cumulative time of the steps (file:function  calls/request  ms/request  % of the exchange):")
    for file_part, func in STEPS:
        calls, _tt, ct = find(stats, file_part, func)
        if calls:
            print(
                f"    {file_part}:{func:<26} {calls / n:5.1f}  {ct / n * 1000:7.3f} ms"
                f"  {ct / total * 100:5.1f} %"
            )


def count_statements(app, fn, n: int) -> tuple[dict[str, float], list[str]]:
    """What reaches PostgreSQL per call of ``fn`` (every round trip), and the last call's in order.

    Counted at the driver (psycopg), below SQLAlchemy, so statements sent
    straight to the driver count too: the implicit ``BEGIN`` psycopg sends
    before the first statement of a transaction, each statement, and a
    ``COMMIT``/``ROLLBACK`` only when a transaction is open (psycopg sends
    nothing otherwise).
    """
    import psycopg
    from psycopg.pq import TransactionStatus

    counts: dict[str, int] = defaultdict(int)
    last: list[str] = []

    def note(kind: str, text: str) -> None:
        counts[kind] += 1
        last.append(text)

    def statement(conn, query) -> None:
        text = query if isinstance(query, str) else getattr(query, "as_string", lambda _c: str(query))(conn)
        if not conn.autocommit and conn.info.transaction_status == TransactionStatus.IDLE:
            note("BEGIN", "BEGIN")
        words = " ".join(str(text).split())
        note(words.split(" ", 1)[0].upper() or ";", words[:150])

    originals = {
        "cursor": psycopg.Cursor.execute,
        "commit": psycopg.Connection.commit,
        "rollback": psycopg.Connection.rollback,
    }

    def cursor_execute(self, query, params=None, **kwargs):
        statement(self.connection, query)
        return originals["cursor"](self, query, params, **kwargs)

    def ending(kind):
        def end_transaction(self):
            if self.info.transaction_status != TransactionStatus.IDLE:
                note(kind, kind)
            return originals[kind.lower()](self)

        return end_transaction

    psycopg.Cursor.execute = cursor_execute
    psycopg.Connection.commit = ending("COMMIT")
    psycopg.Connection.rollback = ending("ROLLBACK")
    try:
        for _ in range(n):
            last.clear()
            fn()
    finally:
        psycopg.Cursor.execute = originals["cursor"]
        psycopg.Connection.commit = originals["commit"]
        psycopg.Connection.rollback = originals["rollback"]
    return {k: v / n for k, v in sorted(counts.items())}, list(last)


def cpu_per_call(fn, n: int, rounds: int = 3) -> float:
    """CPU time of this process per call (ms), median of ``rounds``; no profiler."""
    samples = []
    for _ in range(rounds):
        start = time.process_time()
        for _ in range(n):
            fn()
        samples.append((time.process_time() - start) / n * 1000)
    return sorted(samples)[rounds // 2]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="cProfile of the code exchange, in process")
    parser.add_argument("--requests", type=int, default=600, help="code exchanges to profile (default 600)")
    parser.add_argument(
        "--top", type=int, default=25, help="functions to list by exclusive time (default 25)"
    )
    args = parser.parse_args(argv)
    n = args.requests
    signal.signal(signal.SIGTERM, bench._raise_on_signal)  # so the finally below drops the database
    benv = bench.make_environment()
    try:
        bench.create_database(benv)
        app = bench.provider_app(benv)
        counted = 100
        plain = 300  # requests per round of the timing without profiler
        pending = iter(bench.prepare_provider(app, n + counted + 100 + 3 * plain))
        client = app.test_client()
        headers = {**bench.PROXY_HEADERS, "Authorization": bench.portal_authorization(benv)}
        tokens: list[str] = []

        def exchange():
            item = next(pending)
            r = client.post("/token", headers=headers, data=bench.exchange_form(item))
            assert r.status_code == 200, r.get_data(as_text=True)
            tokens.append(r.get_json()["access_token"])

        for _ in range(50):  # warm-up: first requests build caches, open the pool, load the key
            exchange()
        statements, sequence = count_statements(app, exchange, counted)
        stats, wall = profile(exchange, n)
        total = sum(tt for (_cc, _nc, tt, _ct, _callers) in stats.stats.values())
        print(f"\n== /token (authorization_code, client_secret_basic, PKCE S256): {n} exchanges in process")
        print(
            f"  wall {wall / n * 1000:.2f} ms per exchange under cProfile (profiling adds overhead;"
            f" the shares are what count)"
        )
        print(
            "  database round trips per exchange: "
            + ", ".join(f"{k} {v:g}" for k, v in statements.items())
            + f"  (total {sum(statements.values()):g})"
        )
        print("  in order (one exchange):")
        for statement in sequence:
            print(f"    {statement}")
        print_library_split(stats, n)
        print_steps(stats, n, total)
        print(f"  top {args.top} functions by exclusive time:")
        rows = sorted(stats.stats.items(), key=lambda kv: -kv[1][2])[: args.top]
        for (filename, line, name), (_cc, nc, tt, _ct, _callers) in rows:
            short = filename.split("site-packages/")[-1].replace(str(bench.REPO) + "/", "")
            print(
                f"    {tt / total * 100:5.1f} %  {tt / n * 1000:6.3f} ms  {nc / n:6.1f}x"
                f"  {short}:{line}:{name}"
            )

        print("\n== checks of the rules of issue 2 (calls during the profiled exchanges)")
        argon = calls_matching(stats, "argon2")
        print(
            f"  Argon2 calls: {argon}"
            f"  -> client secrets {'NOT ' if argon else ''}checked with a fast keyed hash"
        )
        mac_calls, _tt, mac_ct = find(stats, "idp/clients.py", "check_client_secret")
        print(
            f"  idp/clients.py:check_client_secret: {mac_calls / n:g} call(s)/request,"
            f" {mac_ct / n * 1e6:.1f} us each (HMAC-SHA256)"
        )
        pem = calls_matching(stats, "load_pem_private_key", "import_key")
        loads, _tt, _ct = find(stats, "idp/keys.py", "_load")
        print(
            f"  PEM private key loads: {calls_matching(stats, 'load_pem_private_key')},"
            f" key imports: {pem - calls_matching(stats, 'load_pem_private_key')},"
            f" KeyRing._load calls: {loads} -> keys {'NOT ' if pem else ''}loaded once"
        )

        for path, label in (("/.well-known/openid-configuration", "discovery"), ("/jwks.json", "JWKS")):

            def get(path=path):
                assert client.get(path, headers=bench.PROXY_HEADERS).status_code == 200

            for _ in range(20):
                get()
            s, w = profile(get, 500)
            dumps = calls_matching(s, "json/__init__.py:0(dumps)", "json/encoder.py", "(dumps)")
            print(
                f"  {label}: {w / 500 * 1000:.3f} ms per request in process,"
                f" json.dumps/encoder calls: {dumps}"
                f" -> {'NOT ' if dumps else ''}served from pre-serialised bytes"
            )

        def userinfo():
            token = tokens[len(tokens) % 97]
            assert (
                client.get(
                    "/userinfo", headers={**bench.PROXY_HEADERS, "Authorization": f"Bearer {token}"}
                ).status_code
                == 200
            )

        s, w = profile(userinfo, 300)
        print(f"\n== /userinfo: {w / 300 * 1000:.2f} ms per request under cProfile")
        print_library_split(s, 300)

        exchange_cpu = cpu_per_call(exchange, plain)

        import bare_app

        bench.write_bare_key(Path(benv.env["BENCH_KEY_FILE"]))
        bare = bare_app.create_app(benv.env["BENCH_KEY_FILE"])
        bare_client = bare.test_client()

        def sign():
            assert bare_client.post("/token").status_code == 200

        for _ in range(20):
            sign()
        s, w = profile(sign, n)
        print(f"\n== bare app (one RS256 signature): {w / n * 1000:.2f} ms per request under cProfile")
        print_library_split(s, n)
        bare_cpu = cpu_per_call(sign, plain)
        print(
            f"\n== CPU of this process per request, no profiler (median of 3 rounds of {plain}):"
            f" code exchange {exchange_cpu:.2f} ms, bare app {bare_cpu:.2f} ms"
            f" ({exchange_cpu / bare_cpu:.1f} x); the test client's own work is in both"
        )
        return 0
    finally:
        bench.drop_database(benv)
        shutil.rmtree(benv.tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
