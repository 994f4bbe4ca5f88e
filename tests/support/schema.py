"""Make a test's database look one migration behind, and put it back afterwards.

PostgreSQL test databases are shared by every test of a run (their tables are
emptied, ``alembic_version`` is kept), so the real revision must come back.
"""

from __future__ import annotations

from contextlib import contextmanager

import sqlalchemy as sa

OLD_REVISION = "0001"


@contextmanager
def schema_behind(app):
    from idp.core.storage import db

    with app.app_context(), db.engine.begin() as conn:
        current = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all()
        conn.execute(sa.text("DELETE FROM alembic_version"))
        conn.execute(sa.text("INSERT INTO alembic_version (version_num) VALUES (:v)"), {"v": OLD_REVISION})
    try:
        yield
    finally:
        with app.app_context(), db.engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM alembic_version"))
            for version in current:
                conn.execute(sa.text("INSERT INTO alembic_version (version_num) VALUES (:v)"), {"v": version})
