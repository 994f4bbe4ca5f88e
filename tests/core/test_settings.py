"""Configuration files: strict validation, all errors at once (file/key/reason), secrets, production rules."""

from __future__ import annotations

import textwrap

import pytest
from click.testing import CliRunner

from connectors.config import ConfigErrors
from idp.cli import main as idp_cli
from idp.config import load as load_settings

ENV = {"T_SECRET": "s" * 48, "T_KEYS": "keys passphrase for tests", "T_PORTAL": "p" * 40}

VALID = """
[provider]
issuer = "http://127.0.0.1:5000"
secret_key = "env:T_SECRET"

[storage]
database_url = "sqlite:///{tmp}/idp.sqlite3"

[keys]
passphrase = "env:T_KEYS"

[[clients]]
client_id = "portal"
type = "confidential"
client_secret = "env:T_PORTAL"
redirect_uris = ["https://portal.example.com/callback"]

[[clients]]
client_id = "app"
type = "public"
redirect_uris = ["be.example.app:/callback", "http://127.0.0.1/callback"]
"""


def write(tmp_path, text: str, name: str = "idp.toml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).replace("{tmp}", str(tmp_path)))
    return path


def errors_of(path, environ=ENV, instance=None) -> list:
    with pytest.raises(ConfigErrors) as info:
        load_settings(path, environ=dict(environ), instance_dir=instance or path.parent)
    return info.value.errors


def has_error(errors, key_part: str, reason_part: str = "") -> bool:
    return any(key_part in e.key and reason_part in e.reason for e in errors)


def test_a_valid_file_loads(tmp_path):
    settings = load_settings(write(tmp_path, VALID), environ=dict(ENV), instance_dir=tmp_path)
    assert settings.issuer == "http://127.0.0.1:5000"
    assert set(settings.clients) >= {"portal", "app"}
    assert settings.clients["portal"].client_secret == "p" * 40


@pytest.mark.parametrize(
    "addition, key",
    [
        ("[provider2]\nx = 1\n", "provider2"),
        ("[tokens]\naccess_token_lifetime = 60\n", "access_token_lifetime"),
        (
            "[[clients]]\nclient_id = 'x'\ntype = 'public'\nredirect_uris = ['https://x.example/cb']\n"
            "colour = 'red'\n",
            "colour",
        ),
    ],
)
def test_unknown_keys_are_errors(tmp_path, addition, key):
    errors = errors_of(write(tmp_path, VALID + addition))
    assert has_error(errors, key, "unknown")


def test_every_error_is_reported_at_once_with_file_key_and_reason(tmp_path):
    path = write(
        tmp_path,
        VALID.replace('issuer = "http://127.0.0.1:5000"', 'issuer = "http://127.0.0.1:5000/"')
        + "[tokens]\naccess_token_ttl = 5\nbogus = true\n[session]\nidle_timeout = 'long'\n",
    )
    errors = errors_of(path)
    assert len(errors) >= 4
    assert has_error(errors, "issuer") and has_error(errors, "access_token_ttl")
    assert has_error(errors, "bogus", "unknown") and has_error(errors, "idle_timeout")
    for e in errors:
        assert e.file == str(path) and e.key and e.reason
        assert str(e).startswith(str(path))


@pytest.mark.parametrize(
    "old, new, key",
    [
        (
            'secret_key = "env:T_SECRET"',
            'secret_key = "a-literal-secret-that-is-long-enough-1234567890"',
            "secret_key",
        ),
        ('passphrase = "env:T_KEYS"', 'passphrase = "literal passphrase"', "passphrase"),
        (
            'client_secret = "env:T_PORTAL"',
            'client_secret = "pppppppppppppppppppppppppppppppppppppppp"',
            "client_secret",
        ),
    ],
)
def test_secrets_are_only_env_or_file_references(tmp_path, old, new, key):
    errors = errors_of(write(tmp_path, VALID.replace(old, new)))
    assert has_error(errors, key, "env:NAME or file:")


def test_a_missing_environment_variable_is_an_error(tmp_path):
    errors = errors_of(write(tmp_path, VALID), environ={k: v for k, v in ENV.items() if k != "T_PORTAL"})
    assert has_error(errors, "client_secret", "T_PORTAL")


def test_secrets_can_come_from_files(tmp_path):
    (tmp_path / "portal.secret").write_text("f" * 40 + "\n")
    path = write(
        tmp_path,
        VALID.replace('client_secret = "env:T_PORTAL"', f'client_secret = "file:{tmp_path}/portal.secret"'),
    )
    assert (
        load_settings(path, environ=dict(ENV), instance_dir=tmp_path).clients["portal"].client_secret
        == "f" * 40
    )


@pytest.mark.parametrize(
    "text, key",
    [
        ('redirect_uris = ["https://portal.example.com/callback#frag"]', "redirect_uris"),
        ('client_secret = "env:SHORT"', "client_secret"),
    ],
)
def test_client_mistakes_are_errors(tmp_path, text, key):
    base = (
        VALID.replace('redirect_uris = ["https://portal.example.com/callback"]', text)
        if "redirect" in text
        else VALID.replace('client_secret = "env:T_PORTAL"', text)
    )
    errors = errors_of(write(tmp_path, base), environ={**ENV, "SHORT": "short"})
    assert has_error(errors, key)


PRODUCTION_REFUSALS = [
    ("storage.kv_url", "kv_url", "redis"),
    ("storage.database_url", "database_url", "PostgreSQL"),
    ("sms.backend", "sms", "development backend"),
    ("mail.backend", "mail", "development backend"),
    ("demo.enabled", "enabled", "development only"),
    ("provider.issuer", "issuer", "https"),
]


@pytest.mark.parametrize("what, key, reason", PRODUCTION_REFUSALS)
def test_production_refuses_development_choices(tmp_path, what, key, reason):
    text = VALID.replace("[provider]\n", '[provider]\nenvironment = "production"\n') + textwrap.dedent(f"""
        [sms]
        backend = "outbox"
        outbox = "{tmp_path}/outbox.jsonl"
        [mail]
        backend = "outbox"
        outbox = "{tmp_path}/outbox.jsonl"
        sender = "no-reply@example.org"
        [demo]
        enabled = true
        """)
    errors = errors_of(write(tmp_path, text))
    assert has_error(errors, key, reason), [str(e) for e in errors]


def test_production_needs_its_secrets_configured(tmp_path):
    text = VALID.replace("[provider]\n", '[provider]\nenvironment = "production"\n')
    text = text.replace('secret_key = "env:T_SECRET"\n', "").replace('passphrase = "env:T_KEYS"\n', "")
    errors = errors_of(write(tmp_path, text))
    assert has_error(errors, "secret_key", "required") and has_error(errors, "passphrase", "required")


def test_production_refuses_plain_http_redirect_uris(tmp_path):
    text = VALID.replace("[provider]\n", '[provider]\nenvironment = "production"\n').replace(
        '"https://portal.example.com/callback"', '"http://portal.example.com/callback"'
    )
    assert has_error(errors_of(write(tmp_path, text)), "redirect_uris", "https")


# ---------------------------------------------------------------------------
# idp config check
# ---------------------------------------------------------------------------


def test_config_check_accepts_a_valid_file(tmp_path, monkeypatch):
    for k, v in ENV.items():
        monkeypatch.setenv(k, v)
    path = write(tmp_path, VALID)
    result = CliRunner().invoke(idp_cli, ["--config", str(path), "config", "check"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("OK")


def test_config_check_lists_every_error_and_fails(tmp_path, monkeypatch):
    for k, v in ENV.items():
        monkeypatch.setenv(k, v)
    path = write(tmp_path, VALID + "[tokens]\naccess_token_ttl = 1\nnope = 2\n")
    result = CliRunner().invoke(idp_cli, ["--config", str(path), "config", "check"])
    assert result.exit_code == 2
    output = result.output + (result.stderr if result.stderr_bytes is not None else "")
    assert f"{path}: tokens.access_token_ttl" in output or "access_token_ttl" in output
    assert "nope" in output and "unknown" in output
    assert "2 error(s)" in output


def test_config_check_reports_an_unreadable_file(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("[provider\nissuer = ")
    result = CliRunner().invoke(idp_cli, ["--config", str(path), "config", "check"])
    assert result.exit_code == 2
    assert "not valid TOML" in result.output + (result.stderr if result.stderr_bytes is not None else "")
