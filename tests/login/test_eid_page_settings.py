"""The ``[connectors.eid.page]`` settings and the install panel's links, read strictly."""

from __future__ import annotations

import pytest

from connectors.config import ConfigTable
from connectors.eid.page import DEFAULT_BRIDGE_URL, EidPageSettings
from idp.login.eid_page import detect_system, install_links


def read(data: dict) -> tuple[EidPageSettings, list[str]]:
    t = ConfigTable(data, "idp.toml", "connectors.eid.page")
    settings = EidPageSettings.from_table(t)
    return settings, [str(e) for e in t.errors]


def test_defaults_point_at_the_bridge_port_and_the_official_sites():
    settings, errors = read({})
    assert not errors
    assert settings.bridge_url == DEFAULT_BRIDGE_URL == "http://127.0.0.1:35963"
    assert settings.middleware_url == "https://eid.belgium.be/{lang}"
    assert settings.web_eid_url == "https://web-eid.eu/"
    assert settings.web_eid is True and settings.bridge_downloads == {}


def test_every_key_is_read():
    settings, errors = read(
        {
            "bridge_url": "http://localhost:40000",
            "min_bridge_version": "1.2",
            "web_eid": False,
            "help_url": "https://help.example.be/{lang}/eid",
            "middleware_url": "https://mirror.example.be/eid/{lang}",
            "web_eid_url": "https://mirror.example.be/web-eid",
            "bridge_downloads": {"windows": "https://dl.example.be/bridge.exe"},
        }
    )
    assert not errors
    assert settings.bridge_url == "http://localhost:40000" and settings.min_bridge_version == "1.2"
    assert settings.web_eid is False and settings.bridge_downloads == {
        "windows": "https://dl.example.be/bridge.exe"
    }


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"bridge_url": "http://192.168.1.5:35963"}, "bridge_url"),
        ({"bridge_url": "https://127.0.0.1:35963"}, "bridge_url"),
        ({"min_bridge_version": "one"}, "min_bridge_version"),
        ({"middleware_url": "http://eid.belgium.be"}, "middleware_url"),
        ({"web_eid_url": "javascript:alert(1)"}, "web_eid_url"),
        ({"help_url": "https://x.example/{os}"}, "help_url"),
        ({"bridge_downloads": {"windows": "ftp://x.example/b.exe"}}, "bridge_downloads.windows"),
        ({"bridge_downloads": {"amiga": "https://x.example/b"}}, "bridge_downloads.amiga"),
        ({"bridge_ur": "http://127.0.0.1:1"}, "bridge_ur"),
    ],
)
def test_bad_values_and_unknown_keys_are_reported_with_their_key(data, key):
    _, errors = read(data)
    assert any(f"connectors.eid.page.{key}" in e for e in errors), errors


@pytest.mark.parametrize(
    ("agent", "system"),
    [
        ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/131.0", "windows"),
        ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 Safari/605.1.15", "macos"),
        ("Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0", "linux"),
        ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 Chrome/131.0 Mobile", None),
        ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15", None),
        ("", None),
    ],
)
def test_the_system_is_read_from_the_user_agent(agent, system):
    assert detect_system(agent) == system


def test_links_are_in_the_page_language_and_only_for_the_users_system(app):
    settings, _ = read(
        {"bridge_downloads": {"windows": "https://dl.example.be/w", "linux": "https://dl.example.be/l"}}
    )
    with app.test_request_context("/", headers={"Accept-Language": "nl-BE"}):
        links = install_links(settings, "Mozilla/5.0 (X11; Linux x86_64)", "/login/eid/help")
    assert links.middleware_url == "https://eid.belgium.be/nl"
    assert links.bridge_downloads == {"linux": "https://dl.example.be/l"}
    assert links.help_url == "/login/eid/help"
    with app.test_request_context("/", headers={"Accept-Language": "de"}):
        everyone = install_links(settings, "curl/8.0", "/login/eid/help")
    assert everyone.system is None and set(everyone.bridge_downloads) == {"windows", "linux"}
