"""Walk every table and column of the schema as the database has it: where does a value appear?"""

from __future__ import annotations

import json

import sqlalchemy as sa


def _tables(conn) -> list[sa.Table]:
    meta = sa.MetaData()
    meta.reflect(bind=conn)
    return list(meta.sorted_tables)


def rows_mentioning(app, needles: list[str]) -> list[tuple[str, str, str]]:
    """(table, column, value) for every text or JSON cell of every table that contains
    one of ``needles`` (case-insensitive): the database as a thief would read it."""
    from idp.core.storage import db

    wanted = [n.lower() for n in needles if n]
    hits = []
    with app.app_context(), db.engine.connect() as conn:
        for table in _tables(conn):
            for row in conn.execute(sa.select(table)).mappings():
                for column, cell in row.items():
                    if cell is None or isinstance(cell, int | float | bool):
                        continue
                    text = cell if isinstance(cell, str) else json.dumps(cell, default=str)
                    if any(n in text.lower() for n in wanted):
                        hits.append((table.name, column, text))
    return hits


def rows_naming_account(app, account_id: int, needles: list[str]) -> list[tuple[str, str, str]]:
    """Cells that name an account: an ``account_id`` column equal to it, or any of ``needles``
    (its sub, username, e-mail, phone, names ...) in a text or JSON column."""
    from idp.core.storage import db

    hits = rows_mentioning(app, needles)
    with app.app_context(), db.engine.connect() as conn:
        for table in _tables(conn):
            if "account_id" in table.c:
                n = conn.execute(
                    sa.select(sa.func.count()).select_from(table).where(table.c.account_id == account_id)
                ).scalar()
                if n:
                    hits.append((table.name, "account_id", str(account_id)))
    return hits
