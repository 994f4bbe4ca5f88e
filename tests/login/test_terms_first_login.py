"""Terms and first login (issue 16, part 6): a new account is asked to accept the terms, with
the link from the configuration; only an account that accepted an older version is told
they have changed."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from tests.conftest import authorize_params
from tests.support.sms_login import login_with_sms, ready


def terms_page(app, make_user, accepted):
    sub = make_user()
    ready(app, sub, terms_version=accepted)
    client = app.test_client()
    params, _ = authorize_params(ui_locales="en")
    tx_path = urlsplit(client.get("/authorize", query_string=params).location).path
    login_with_sms(client, app, tx_path)
    page = client.get(tx_path + "/actions/terms")
    assert page.status_code == 200
    return page.get_data(as_text=True)


@pytest.fixture
def app(make_app):
    return make_app({"registration": {"terms_url": "https://www.example.org/terms-2026"}})


def test_a_new_account_is_asked_to_accept_the_terms_with_the_configured_link(app, make_user):
    body = terms_page(app, make_user, None)
    assert "Please accept our terms of use" in body and "have changed" not in body
    assert 'href="https://www.example.org/terms-2026"' in body


def test_an_account_that_accepted_older_terms_is_told_they_changed(app, make_user):
    body = terms_page(app, make_user, "2020-01")
    assert "Our terms of use have changed" in body


def test_the_footer_terms_link_is_used_when_registration_names_none(make_app):
    app = make_app({"branding": {"terms_url": "https://www.example.org/cgu"}})

    def make_user(**kw):
        from tests.conftest import make_user_in

        return make_user_in(app, **kw)

    body = terms_page(app, make_user, None)
    assert body.count('href="https://www.example.org/cgu"') == 2  # the page and the footer
