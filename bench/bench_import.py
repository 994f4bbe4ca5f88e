"""How long ``idp users import`` takes for 100,000 accounts, on SQLite and on PostgreSQL.

    PYTHONPATH=$PWD python bench/bench_import.py                  # SQLite only
    PYTHONPATH=$PWD python bench/bench_import.py \\
        --postgres postgresql://postgres@127.0.0.1:5432/postgres  # and PostgreSQL

1. generates N accounts (default 100,000) as JSON lines, with the hash
   formats mixed evenly (bcrypt, PBKDF2 Django/modular/Keycloak, Argon2,
   scrypt, SHA-crypt); each format has a pool of 20 real hashes of distinct
   passwords reused across accounts (making 100,000 bcrypt hashes would
   take longer than the import, and the import checks each row the same way);
2. for each database: a fresh, migrated database (for PostgreSQL a new
   database on the given server, dropped at the end), then runs the real
   ``idp users import FILE`` command in a subprocess and prints its wall time;
3. runs the same import a second time (nothing changes: every row is compared)
   and prints that time too.
"""

from __future__ import annotations

import argparse
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support import legacy_accounts as legacy  # noqa: E402

POOL = 20
# The `idp` command of this checkout (idp/cli.py has no __main__ block for `python -m`).
IDP = [sys.executable, "-c", "from idp.cli import main; main()"]


def generate(path: Path, n: int) -> None:
    pools = {name: [] for name in legacy.hashes("seed")}
    for i in range(POOL):
        for name, h in legacy.hashes(f"password {i}").items():
            pools[name].append(h)
    names = list(pools)
    with path.open("w", encoding="utf-8") as out:
        rows = []
        for i in range(n):
            fmt = names[i % len(names)]
            rows.append(legacy.account(f"user{i:06d}", pools[fmt][i % POOL], i % 99999 + 1))
            if len(rows) == 5000:
                out.write(legacy.to_jsonl(rows))
                rows = []
        out.write(legacy.to_jsonl(rows))


def config_text(database_url: str, instance: Path) -> str:
    return f"""
[provider]
issuer = "http://127.0.0.1:5000"
environment = "development"
secret_key = "env:BENCH_SECRET_KEY"
[storage]
database_url = "{database_url}"
kv_url = "memory://"
[keys]
passphrase = "env:BENCH_KEYS_PASSPHRASE"
[sms]
backend = "outbox"
outbox = "{instance / "outbox.jsonl"}"
[mail]
backend = "outbox"
outbox = "{instance / "outbox.jsonl"}"
sender = "no-reply@example.org"
"""


def run_import(config: Path, file: Path) -> tuple[float, str]:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "IDP_CONFIG": str(config),
        "BENCH_SECRET_KEY": "b" * 48,
        "BENCH_KEYS_PASSPHRASE": "bench keys passphrase",
    }
    started = time.perf_counter()
    done = subprocess.run(
        [*IDP, "users", "import", str(file)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"import failed:\n{done.stdout}\n{done.stderr[-3000:]}")
    return elapsed, done.stdout.strip().splitlines()[0]


def migrate(config: Path) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "IDP_CONFIG": str(config),
        "BENCH_SECRET_KEY": "b" * 48,
        "BENCH_KEYS_PASSPHRASE": "bench keys passphrase",
    }
    subprocess.run([*IDP, "db", "upgrade"], env=env, check=True, capture_output=True)


def bench(label: str, database_url: str, file: Path, n: int, folder: Path) -> None:
    instance = folder / label
    instance.mkdir()
    config = instance / "idp.toml"
    config.write_text(config_text(database_url, instance), encoding="utf-8")
    migrate(config)
    first, summary = run_import(config, file)
    second, summary2 = run_import(config, file)
    print(f"{label:<10}  first import {first:7.1f} s  ({n / first:8.0f} accounts/s)  {summary}")
    print(f"{'':<10}  again        {second:7.1f} s  ({n / second:8.0f} accounts/s)  {summary2}")


def postgres_database(server: str):
    import sqlalchemy as sa

    name = f"idp_bench_import_{secrets.token_hex(4)}"
    engine = sa.create_engine(
        server.replace("postgresql://", "postgresql+psycopg://", 1), isolation_level="AUTOCOMMIT"
    )
    with engine.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    return engine, name, urlsplit(server)._replace(path="/" + name).geturl()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=100_000, help="accounts (default 100000)")
    parser.add_argument(
        "--postgres", help="a PostgreSQL server URL; a new database is made and dropped there"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        file = folder / "accounts.jsonl"
        started = time.perf_counter()
        generate(file, args.n)
        took = time.perf_counter() - started
        print(f"generated {args.n} accounts ({file.stat().st_size / 1e6:.1f} MB) in {took:.1f} s")
        bench("sqlite", f"sqlite:///{folder / 'bench.sqlite3'}", file, args.n, folder)
        if args.postgres:
            import sqlalchemy as sa

            engine, name, url = postgres_database(args.postgres)
            try:
                bench("postgresql", url, file, args.n, folder)
            finally:
                with engine.connect() as conn:
                    conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                engine.dispose()


if __name__ == "__main__":
    main()
