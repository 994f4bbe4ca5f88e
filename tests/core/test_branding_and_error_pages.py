"""The operator's brand ([branding]) on every page, and error pages that speak the
customer's language (issue 16, parts 1 and 7)."""

from __future__ import annotations

import pytest
from werkzeug.exceptions import ServiceUnavailable

from connectors.config import ConfigErrors
from idp.accounts.customers import known_contract
from idp.core.branding import contrast_ratio
from tests.support.account_flows import customer_line, load_customers

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
SVG = b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 10"><rect width="10" height="10"/></svg>'


@pytest.fixture
def branded(make_app, tmp_path):
    (tmp_path / "logo.svg").write_bytes(SVG)
    (tmp_path / "favicon.png").write_bytes(PNG)
    return make_app(
        {
            "branding": {
                "logo": str(tmp_path / "logo.svg"),
                "favicon": str(tmp_path / "favicon.png"),
                "primary_color": "#00594f",
                "support_phone": "02/406.87.09",
                "support_hours": {"fr": "du lundi au jeudi de 8h30 à 17h", "nl": "maandag tot donderdag"},
                "support_email": "help@example.org",
                "terms_url": "https://www.example.org/terms",
                "privacy_url": "https://www.example.org/privacy",
                "help_url": "https://www.example.org/faq",
            }
        }
    )


@pytest.mark.parametrize(
    ("lang", "title"),
    [
        ("fr", "Page introuvable"),
        ("nl", "Pagina niet gevonden"),
        ("de", "Seite nicht gefunden"),
        ("en", "Page not found"),
    ],
)
def test_an_unknown_page_is_answered_in_the_customers_language(client, lang, title):
    resp = client.get("/no/such/page", headers={"Accept-Language": lang})
    body = resp.get_data(as_text=True)
    assert resp.status_code == 404
    assert f"<h1>{title}</h1>" in body and f'lang="{lang}"' in body
    assert "requested URL was not found" not in body  # not Werkzeug's English text
    assert 'href="/login/-"' in body  # a way forward


def test_a_wrong_method_gets_a_translated_405_with_its_allow_header(client):
    resp = client.delete("/login/-", headers={"Accept-Language": "nl"})
    assert resp.status_code == 405
    assert "Deze handeling is hier niet mogelijk" in resp.get_data(as_text=True)
    assert "GET" in resp.headers["Allow"]


def test_500_and_503_pages_are_translated_and_branded(make_app):
    app = make_app({"branding": {"support_phone": "02/406.87.09"}})

    @app.route("/boom")
    def boom():
        raise RuntimeError("internal detail")

    @app.route("/busy")
    def busy():
        raise ServiceUnavailable(retry_after=120)

    client = app.test_client()
    resp = client.get("/boom", headers={"Accept-Language": "de"})
    body = resp.get_data(as_text=True)
    assert resp.status_code == 500 and "internal detail" not in body
    assert "Etwas ist schiefgelaufen" in body
    assert "02/406.87.09" in body
    resp = client.get("/busy", headers={"Accept-Language": "fr"})
    assert resp.status_code == 503 and resp.headers["Retry-After"] == "120"
    assert "Service temporairement indisponible" in resp.get_data(as_text=True)


def test_api_endpoints_still_answer_errors_in_json(client):
    resp = client.get("/.well-known/nothing-here")
    assert resp.status_code == 404 and resp.is_json


def test_every_page_has_the_logo_footer_contact_links_and_favicon(branded):
    client = branded.test_client()
    body = client.get("/login/-", headers={"Accept-Language": "fr"}).get_data(as_text=True)
    assert '<img src="/branding/logo?v=' in body and 'alt="MyOnlineServices"' in body
    assert 'href="tel:024068709"' in body and "8h30" in body and "mailto:help@example.org" in body
    for url in (
        "https://www.example.org/terms",
        "https://www.example.org/privacy",
        "https://www.example.org/faq",
    ):
        assert f'href="{url}"' in body
    assert '<link rel="icon" href="/favicon.ico">' in body
    nl = client.get("/no/such/page", headers={"Accept-Language": "nl"}).get_data(as_text=True)
    assert "maandag tot donderdag" in nl  # error pages carry the brand too


def test_brand_files_and_colours_are_served_from_this_server(branded):
    client = branded.test_client()
    favicon = client.get("/favicon.ico")
    assert favicon.status_code == 200 and favicon.mimetype == "image/png" and favicon.data == PNG
    logo = client.get("/branding/logo")
    assert logo.mimetype == "image/svg+xml" and logo.data == SVG
    assert "default-src 'none'" in logo.headers["Content-Security-Policy"]
    theme = client.get("/branding/theme.css")
    assert theme.mimetype == "text/css" and "--accent: #00594f" in theme.get_data(as_text=True)
    assert client.get("/branding/eid_mark").status_code == 404


def test_the_page_policy_is_unchanged_no_third_party_resources(branded):
    resp = branded.test_client().get("/login/-")
    csp = resp.headers["Content-Security-Policy"]
    assert "img-src 'self' data:" in csp and "style-src 'self'" in csp and "script-src 'self'" in csp
    body = resp.get_data(as_text=True)
    assert "https://" not in body.split("<footer")[0]  # nothing loaded from elsewhere


def test_a_default_favicon_exists(client):
    resp = client.get("/favicon.ico")
    assert resp.status_code == 200 and resp.mimetype == "image/svg+xml"


def test_bad_brand_settings_are_all_reported(make_app, tmp_path):
    (tmp_path / "logo.gif").write_bytes(b"GIF89a....")
    with pytest.raises(ConfigErrors) as caught:
        make_app(
            {
                "branding": {
                    "logo": str(tmp_path / "logo.gif"),
                    "favicon": str(tmp_path / "missing.png"),
                    "primary_color": "#ffff00",
                    "text_color": "blue",
                    "support_email": "not-an-address",
                    "terms_url": "javascript:alert(1)",
                    "colour": "#000000",
                }
            }
        )
    text = str(caught.value)
    for key in ("logo", "favicon", "primary_color", "text_color", "support_email", "terms_url", "colour"):
        assert f"branding.{key}" in text, key


def test_contrast_ratio_follows_wcag():
    assert round(contrast_ratio("#000000", "#ffffff"), 1) == 21.0
    assert contrast_ratio("#0b5cad", "#ffffff") >= 4.5


def test_contract_numbers_match_what_people_type_from_the_letter(app):
    load_customers(
        app,
        customer_line(contracts="AB-1001/7"),
        customer_line("C-2", card="5555 5555 5555 4444", contracts="X-12|X1-2", national="", mobile=""),
    )
    with app.app_context():
        assert known_contract(" ab 1001 7 ") == "AB-1001/7"
        assert known_contract("ab-1001/7") == "AB-1001/7"
        assert known_contract("x12") == "X12"  # two stored numbers fit: no guess
        assert known_contract("X1-2") == "X1-2"
