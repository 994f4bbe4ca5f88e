"""In Chromium: an imported account of each hash format logs in (password + SMS) and is re-hashed."""

from __future__ import annotations

import json

import pytest
from flask.cli import ScriptInfo
from sqlalchemy import select

from idp.cli import main
from idp.core.storage import Account, db
from tests.support import legacy_accounts as legacy
from tests.support.sms_login import last_code, ready

pytestmark = pytest.mark.browser


def test_one_account_of_each_format_logs_in_through_the_browser_and_ends_on_argon2id(
    live_server, page, tmp_path
):
    server = live_server()
    app = server.app
    rows = legacy.one_per_format()
    path = tmp_path / "accounts.jsonl"
    path.write_text(legacy.to_jsonl(rows), encoding="utf-8")
    result = app.test_cli_runner().invoke(
        main, ["users", "import", str(path)], obj=ScriptInfo(create_app=lambda: app)
    )
    assert result.exit_code == 0, result.output
    with app.app_context():
        subs = dict(db.session.execute(select(Account.username, Account.sub)).all())
    prefix = app.extensions["idp.passwords"].current_prefix()

    for row in rows:
        ready(app, subs[row["username"]])
        page.context.clear_cookies()
        page.goto(server.url + "/demo/")
        page.click("#demo-login")
        page.wait_for_url("**/login/**")
        page.click("a[href$='/password']")
        page.fill("#username", row["username"])
        page.fill("#password", legacy.LEGACY_PASSWORD)
        page.click("button[type=submit].primary")
        page.wait_for_url("**/code")
        page.fill("input[name=code]", last_code(app, row["mobile"]))
        page.click("button[type=submit].primary")
        page.wait_for_url("**/demo/")
        claims = json.loads(page.text_content("#id-token-claims"))
        assert claims["sub"] == subs[row["username"]], row["username"]
        with app.app_context():
            stored = db.session.scalar(
                select(Account.password_hash).where(Account.username == row["username"])
            )
        assert stored.startswith(prefix), row["username"]
        assert app.extensions["idp.passwords"].verify(stored, legacy.LEGACY_PASSWORD)
