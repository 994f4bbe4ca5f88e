"""The pages, e-mails and SMS texts speak French, Dutch, German and English (Flask-Babel catalogs).

The catalogs under ``idp/translations`` must cover every English source string
that ``babel.cfg`` extracts, keep each placeholder, and ship a compiled ``.mo``
that matches its ``.po``. A page follows the picked language, then
``ui_locales``, then ``Accept-Language``; messages follow the account's language.
"""

from __future__ import annotations

import re
from io import BytesIO
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import read_mo, write_mo
from babel.messages.pofile import read_po

from tests.conftest import PASSWORD, authorize_params, csrf_from
from tests.support.sms_login import emails_to, ready, sms_to

ROOT = Path(__file__).resolve().parents[2]
TRANSLATIONS = ROOT / "idp" / "translations"
LANGUAGES = ("fr", "nl", "de")
KEYWORDS = {**DEFAULT_KEYWORDS, "_l": None, "lazy_gettext": None}
PLURAL_FORMS = {"fr": "nplurals=2; plural=(n > 1);", "nl": "nplurals=2; plural=(n != 1);"}
PLURAL_FORMS["de"] = PLURAL_FORMS["nl"]
# %(name)s / %(n)d, a bare %s, {name} (the eID page script fills these), HTML tags and entities.
PLACEHOLDER = re.compile(
    r"%\(\w+\)[#0 +-]*\d*(?:\.\d+)?[diouxXeEfFgGcrsa]|%[sd]|\{\w*\}|</?[a-zA-Z][^>]*>|&\w+;"
)
NO_FLOOR = {"registration": {"recovery": {"response_time_floor_ms": 0}}}


# ---------------------------------------------------------------------------
# The catalogs
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def source() -> Catalog:
    """What ``pybabel extract -F babel.cfg -k _l -k lazy_gettext`` finds in the current sources."""
    with open(ROOT / "babel.cfg", encoding="utf-8") as f:
        method_map, options_map = parse_mapping_cfg(f, "babel.cfg")
    catalog = Catalog()
    for filename, lineno, message, comments, context in extract_from_dir(
        str(ROOT), method_map, options_map, keywords=KEYWORDS, comment_tags=("TRANSLATORS:",)
    ):
        catalog.add(message, None, [(filename, lineno)], auto_comments=comments, context=context)
    assert len(catalog) > 100, "the extraction found almost nothing: is babel.cfg right?"
    return catalog


def po_path(lang: str) -> Path:
    return TRANSLATIONS / lang / "LC_MESSAGES" / "messages.po"


def load(lang: str) -> Catalog:
    with open(po_path(lang), "rb") as f:
        return read_po(f, locale=lang)


def forms(value) -> tuple[str, ...]:
    return value if isinstance(value, tuple) else (value,)


def placeholders(text: str) -> list[str]:
    return sorted(PLACEHOLDER.findall(text))


def where(message) -> str:
    return ", ".join(f"{f}:{n}" for f, n in message.locations[:2])


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_source_string_has_a_translation(source, lang):
    catalog = load(lang)
    missing = []
    for message in source:
        if not message.id:
            continue
        translated = catalog.get(message.id, context=message.context)
        if translated is None or not all(s.strip() for s in forms(translated.string)):
            missing.append(f"{where(message)}: {message.id!r}")
    assert not missing, f"{len(missing)} string(s) not translated in {lang} (see docs/translations.md):\n" + (
        "\n".join(missing)
    )


@pytest.mark.parametrize("lang", LANGUAGES)
def test_no_entry_is_fuzzy_or_empty(lang):
    catalog = load(lang)
    assert not catalog.fuzzy, "the header is marked fuzzy"
    bad = [m.id for m in catalog if m.id and (m.fuzzy or not all(s.strip() for s in forms(m.string)))]
    assert not bad, f"fuzzy or empty entries in {lang}: {bad}"


@pytest.mark.parametrize("lang", LANGUAGES)
def test_placeholders_in_translations_match_the_source(lang):
    catalog = load(lang)
    wrong = []
    for message in catalog:
        if not message.id:
            continue
        ids = forms(message.id)
        for i, text in enumerate(forms(message.string)):
            # The first form answers to msgid, every other plural form to msgid_plural.
            expected = placeholders(ids[0] if i == 0 else ids[-1])
            if placeholders(text) != expected:
                wrong.append(f"{message.id!r} -> {text!r}")
    assert not wrong, f"placeholders differ in {lang}:\n" + "\n".join(wrong)
    # Babel's own checks: python-format conversions and the number of plural forms.
    errors = [(m.id, [str(e) for e in errs]) for m, errs in catalog.check()]
    assert not errors, errors


@pytest.mark.parametrize("lang", LANGUAGES)
def test_plural_rules_are_those_of_the_language(lang):
    catalog = load(lang)
    assert catalog.plural_forms == PLURAL_FORMS[lang]
    plurals = [m for m in catalog if m.id and m.pluralizable]
    assert plurals, "the catalog should hold the ngettext message of the login lockout"
    for m in plurals:
        assert len(m.string) == catalog.num_plurals, m.id


# GSM 03.38: the 7-bit default alphabet and its extension table. One character outside it
# (a no-break space, «, ’, ç, ê...) makes the whole SMS UCS-2: 70 characters a part instead of 160.
GSM_7 = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡"
    "ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà^{}\\[~]|€"
)
SMS_SOURCES = ("idp/otp.py",)
SMS_MESSAGES = {
    "Your mobile number for %(service)s was changed to %(number)s. If you did not do this, "
    "contact us at once."
}


@pytest.mark.parametrize("lang", LANGUAGES)
def test_sms_texts_keep_to_the_gsm_alphabet(lang):
    catalog = load(lang)
    sms = [
        m
        for m in catalog
        if m.id and (m.id in SMS_MESSAGES or any(f.replace("\\", "/") in SMS_SOURCES for f, _ in m.locations))
    ]
    assert len(sms) >= 2
    outside = {m.id: sorted(set(s) - GSM_7) for m in sms for s in forms(m.string) if set(s) - GSM_7}
    assert not outside, outside


def _compiled_messages(data: bytes) -> dict:
    """The translations a compiled catalog holds, without its header (which names the Babel
    version that wrote it, and so differs between machines with the same messages)."""
    return {
        (message.context, message.id if isinstance(message.id, str) else tuple(message.id)): message.string
        for message in read_mo(BytesIO(data))
        if message.id
    }


@pytest.mark.parametrize("lang", LANGUAGES)
def test_compiled_catalog_matches_its_source(lang):
    buffer = BytesIO()
    write_mo(buffer, load(lang))
    committed = _compiled_messages(po_path(lang).with_suffix(".mo").read_bytes())
    assert committed == _compiled_messages(buffer.getvalue()), (
        f"idp/translations/{lang}/LC_MESSAGES/messages.mo is stale: run pybabel compile -d idp/translations"
    )


# ---------------------------------------------------------------------------
# Pages
# ---------------------------------------------------------------------------

PASSWORD_PAGE = {
    "fr": ("Connexion à MyOnlineServices", "Mot de passe", "Nom d'utilisateur"),
    "nl": ("Aanmelden bij MyOnlineServices", "Wachtwoord", "Gebruikersnaam"),
    "de": ("Bei MyOnlineServices anmelden", "Passwort", "Benutzername"),
    "en": ("Log in to MyOnlineServices", "Password", "Username"),
}
CHOOSE_PAGE = {
    "fr": "Mot de passe oublié",
    "nl": "Wachtwoord vergeten?",
    "de": "Passwort vergessen?",
    "en": "Forgot password?",
}


def html_lang(html: str) -> str:
    m = re.search(r'<html lang="([^"]*)"', html)
    assert m, "no <html lang> on the page"
    return m.group(1)


def start_login(client, headers=None, **extra) -> str:
    params, _ = authorize_params(**extra)
    resp = client.get("/authorize", query_string=params, headers=headers or {})
    assert resp.status_code == 302 and "/login/" in resp.location, resp.get_data(as_text=True)
    return urlsplit(resp.location).path


# English words that must not show on a page in another language (source strings left untranslated).
ENGLISH = ("Forgot", "Username", "Log in", "Other ways", "password")


def visible_text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]*>", " ", html.split("<body>", 1)[-1]))


def assert_speaks(html: str, lang: str) -> None:
    assert html_lang(html) == lang
    for text in PASSWORD_PAGE[lang]:
        assert text in html, f"{text!r} not on the {lang} page"
    if lang != "en":
        text = visible_text(html)
        assert not [w for w in ENGLISH if w in text], f"English left on the {lang} page: {text}"


@pytest.mark.parametrize("lang", ["fr", "nl", "de", "en"])
def test_login_pages_follow_accept_language(client, lang):
    headers = {"Accept-Language": f"{lang};q=0.9, en-GB;q=0.1" if lang != "en" else "en-GB, en;q=0.9"}
    tx_path = start_login(client, headers)
    choose = client.get(tx_path, headers=headers).get_data(as_text=True)
    assert html_lang(choose) == lang
    assert CHOOSE_PAGE[lang] in choose
    if lang != "en":
        assert not [w for w in ENGLISH if w in visible_text(choose)], visible_text(choose)
    page = client.get(tx_path + "/password", headers=headers)
    assert page.status_code == 200
    assert_speaks(page.get_data(as_text=True), lang)


def test_pages_without_accept_language_use_the_default_language(client):
    client.environ_base.pop("HTTP_ACCEPT_LANGUAGE", None)  # the test client asks for English otherwise
    tx_path = start_login(client)
    assert_speaks(client.get(tx_path + "/password").get_data(as_text=True), "fr")


def test_ui_locales_of_the_request_wins_over_accept_language(client):
    headers = {"Accept-Language": "fr"}
    tx_path = start_login(client, headers, ui_locales="de-BE nl")
    # Later pages of the same login keep the request's language.
    assert_speaks(client.get(tx_path + "/password", headers=headers).get_data(as_text=True), "de")


def test_unsupported_ui_locales_fall_back_to_accept_language(client):
    headers = {"Accept-Language": "nl-BE"}
    tx_path = start_login(client, headers, ui_locales="es it")
    assert_speaks(client.get(tx_path + "/password", headers=headers).get_data(as_text=True), "nl")


def test_language_picker_switches_the_language(client):
    headers = {"Accept-Language": "nl"}
    tx_path = start_login(client, headers)
    page = client.get(tx_path + "/password", headers=headers).get_data(as_text=True)
    assert_speaks(page, "nl")
    for code in ("fr", "nl", "de", "en"):
        assert f'action="/lang/{code}"' in page, f"no picker button for {code}"
    resp = client.post(
        "/lang/de", data={"csrf_token": csrf_from(page), "next": tx_path + "/password"}, headers=headers
    )
    assert resp.status_code == 303
    assert urlsplit(resp.location).path == tx_path + "/password"
    # The choice outlives Accept-Language and the request's ui_locales.
    assert_speaks(client.get(resp.location, headers=headers).get_data(as_text=True), "de")
    other = start_login(client, headers, ui_locales="fr")
    assert_speaks(client.get(other + "/password", headers=headers).get_data(as_text=True), "de")


@pytest.mark.parametrize(
    "code, target, expected_location",
    [
        ("es", "/login/-", "/login/-"),  # not offered: the language stays as it was
        ("de", "https://evil.example/", "/"),
        ("de", "//evil.example/", "/"),
    ],
)
def test_language_picker_keeps_to_supported_languages_and_local_targets(
    client, code, target, expected_location
):
    headers = {"Accept-Language": "nl"}
    page = client.get("/login/-", headers=headers).get_data(as_text=True)
    resp = client.post(f"/lang/{code}", data={"csrf_token": csrf_from(page), "next": target}, headers=headers)
    assert resp.status_code == 303
    assert urlsplit(resp.location).path == expected_location
    assert not urlsplit(resp.location).netloc or urlsplit(resp.location).netloc == "localhost"
    after = client.get("/login/-", headers=headers).get_data(as_text=True)
    assert html_lang(after) == ("nl" if code == "es" else code)


def test_language_picker_needs_the_csrf_token(client):
    resp = client.post("/lang/de", data={"next": "/login/-"})
    assert resp.status_code == 400
    assert html_lang(client.get("/login/-", headers={"Accept-Language": "nl"}).get_data(as_text=True)) == "nl"


# ---------------------------------------------------------------------------
# SMS and e-mail
# ---------------------------------------------------------------------------

SMS_TEXT = {
    "fr": "est votre code MyOnlineServices pour vous connecter. Il est valable",
    "nl": "is uw code voor MyOnlineServices om u aan te melden. Hij is",
    "de": "ist Ihr Code für MyOnlineServices, um sich anzumelden. Er ist",
    "en": "is your MyOnlineServices code to log in. It is valid for",
}


@pytest.mark.parametrize(
    "account_locale, page_language, expected",
    [
        (None, "fr", "fr"),
        (None, "nl", "nl"),
        (None, "de", "de"),
        (None, "en", "en"),
        ("nl", "fr", "nl"),  # the account's own language wins over the page's
        ("de", "en", "de"),
    ],
)
def test_login_sms_is_in_the_persons_language(app, client, user, account_locale, page_language, expected):
    if account_locale:
        ready(app, user, locale=account_locale)
    headers = {"Accept-Language": page_language}
    tx_path = start_login(client, headers)
    page = client.get(tx_path + "/password", headers=headers).get_data(as_text=True)
    resp = client.post(
        tx_path + "/password",
        data={"csrf_token": csrf_from(page), "username": "alice", "password": PASSWORD},
        headers=headers,
    )
    assert resp.status_code == 303 and resp.location.endswith("/code"), resp.status_code
    texts = sms_to(app)
    assert len(texts) == 1
    assert SMS_TEXT[expected] in texts[0], texts[0]
    assert re.match(r"\d{6} ", texts[0])


RESET_MAIL = {
    "fr": (
        "Choisissez un nouveau mot de passe pour MyOnlineServices",
        "Le lien ne fonctionne qu'une seule fois",
    ),
    "nl": ("Kies een nieuw wachtwoord voor MyOnlineServices", "De link werkt één keer"),
    "de": ("Wählen Sie ein neues Passwort für MyOnlineServices", "Der Link funktioniert einmal"),
    "en": ("Choose a new password for MyOnlineServices", "The link works once"),
}


@pytest.mark.parametrize(
    "account_locale, page_language, expected",
    [(None, "de", "de"), (None, "nl", "nl"), (None, "en", "en"), ("fr", "de", "fr")],
)
def test_password_reset_email_is_in_the_persons_language(
    make_app, make_user, account_locale, page_language, expected
):
    app = make_app(NO_FLOOR)
    client = app.test_client()
    sub = make_user()
    if account_locale:
        ready(app, sub, locale=account_locale)
    headers = {"Accept-Language": page_language}
    page = client.get("/recover/password", headers=headers).get_data(as_text=True)
    assert html_lang(page) == page_language
    resp = client.post(
        "/recover/password", data={"csrf_token": csrf_from(page), "username": "alice"}, headers=headers
    )
    assert resp.status_code == 303
    mails = emails_to(app, "alice@example.com")
    assert len(mails) == 1
    subject, body = RESET_MAIL[expected]
    assert mails[0]["subject"] == subject
    assert body in mails[0]["text"] and body in mails[0]["html"]
