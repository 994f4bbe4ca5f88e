"""A public client's refresh rotation is one transaction (issue 12 part 3).

The failure is a real database error: a trigger makes the INSERT of the new
refresh token fail (SQLite ``RAISE(ABORT)``, PostgreSQL ``RAISE EXCEPTION``);
another test makes the ID token's signing fail after that INSERT. Either way
the old token is still usable afterwards and its family is alive.
"""

from __future__ import annotations

import sqlalchemy as sa

from tests.support.oidc import app_tokens, refresh, userinfo

TRIGGERS = {
    "sqlite": [
        "CREATE TRIGGER refuse_refresh BEFORE INSERT ON refresh_tokens "
        "BEGIN SELECT RAISE(ABORT, 'injected failure'); END"
    ],
    "postgresql": [
        "CREATE FUNCTION refuse_refresh() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'injected failure'; END $$",
        "CREATE TRIGGER refuse_refresh BEFORE INSERT ON refresh_tokens "
        "FOR EACH ROW EXECUTE FUNCTION refuse_refresh()",
    ],
}
DROP = {
    "sqlite": ["DROP TRIGGER refuse_refresh"],
    "postgresql": ["DROP TRIGGER refuse_refresh ON refresh_tokens", "DROP FUNCTION refuse_refresh()"],
}


def run_sql(app, statements):
    from idp.core.storage import db

    with app.app_context(), db.engine.begin() as conn:
        for statement in statements:
            conn.execute(sa.text(statement))


def refresh_rows(app):
    from idp.core.storage import RefreshToken, db

    with app.app_context():
        return sorted(
            (r.token_hash, r.used_at is not None) for r in db.session.scalars(sa.select(RefreshToken))
        )


def test_a_failed_insert_of_the_new_refresh_token_leaves_the_old_one_usable(app, client, user, backend):
    tokens = app_tokens(client)
    before = refresh_rows(app)
    run_sql(app, TRIGGERS[backend])
    try:
        failed = refresh(client, tokens["refresh_token"])
    finally:
        run_sql(app, DROP[backend])
    assert failed.status_code == 500 and failed.get_json()["error"] == "server_error"
    assert refresh_rows(app) == before  # not marked used, nothing new stored

    again = refresh(client, tokens["refresh_token"])
    assert again.status_code == 200, again.get_json()
    assert userinfo(client, again.get_json()["access_token"]).status_code == 200
    assert refresh(client, again.get_json()["refresh_token"]).status_code == 200  # the family lives


def test_a_failure_after_the_insert_leaves_the_old_one_usable(app, client, user, monkeypatch):
    tokens = app_tokens(client)
    before = refresh_rows(app)
    keys = app.extensions["idp.keys"]
    real_sign = keys.sign

    def sign(claims, **kwargs):
        if kwargs.get("typ") != "at+jwt":  # the ID token, made after the new token's INSERT
            raise RuntimeError("injected signing failure")
        return real_sign(claims, **kwargs)

    monkeypatch.setattr(keys, "sign", sign)
    failed = refresh(client, tokens["refresh_token"])
    monkeypatch.setattr(keys, "sign", real_sign)
    assert failed.status_code == 500
    assert refresh_rows(app) == before

    again = refresh(client, tokens["refresh_token"])
    assert again.status_code == 200, again.get_json()
    assert refresh(client, again.get_json()["refresh_token"]).status_code == 200


def test_after_a_successful_rotation_the_old_token_is_still_a_reuse(client, user):
    tokens = app_tokens(client)
    new = refresh(client, tokens["refresh_token"]).get_json()
    assert refresh(client, tokens["refresh_token"]).get_json()["error"] == "invalid_grant"
    assert refresh(client, new["refresh_token"]).get_json()["error"] == "invalid_grant"
