"""Typed provider settings, read from TOML files and validated once at start-up.

:func:`load_settings` reads the provider file (and the clients file it names),
collects *every* error with file, key and reason, rejects unknown keys and raises
:class:`connectors.config.ConfigErrors` once. ``idp config check`` runs the same
pass without starting anything.

The provider's own tables are read here, the relying parties' in
:mod:`idp.core.client_settings`, each connector's by its connector, and every
other table (``[sms]``, ``[mail]``, ``[passwords]``, ``[otp]`` ...) by the module
that owns it: the caller names them as :class:`Section` objects
(:data:`idp.config.SECTIONS` is the one list), so this ground-floor module never
imports the packages above it.

Without a configuration file the provider runs on its embedded development
defaults: SQLite and keys under the instance folder, secrets generated on
first start, the development outbox for SMS and e-mail, the demo client.
"""

from __future__ import annotations

import os
import secrets
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from connectors.base import LEVELS
from connectors.config import ConfigError, ConfigErrors, ConfigTable
from idp.core.client_settings import LOGIN_METHODS, ClientSettings, read_client
from idp.core.method_settings import (
    MethodSettings,
    check_eid_origin,
    is_host_name,
    read_connectors,
    read_methods,
)

DEFAULT_LANGUAGES = ("fr", "nl", "de", "en")
SIGNING_ALGORITHMS = ("RS256", "PS256", "ES256")

# RFC 8176 values recorded for each method when the connector does not say more.
DEFAULT_ACR = {
    "low": "urn:idp:acr:low",
    "substantial": "urn:idp:acr:substantial",
    "high": "urn:idp:acr:high",
}


# ``backend`` values of a section that only development may use (Warehouse-style services).
DEVELOPMENT_BACKENDS = ("console", "outbox")


@dataclass(frozen=True)
class Section:
    """A table read by the module that owns it.

    ``read`` gets the table (empty when absent, so defaults apply) and returns its
    settings object; its errors go to the table's error list. ``required`` tables
    must be present in production; in development ``development_table(instance_dir)``
    stands in for an absent one. A section whose value has a ``backend`` refuses
    :data:`DEVELOPMENT_BACKENDS` in production.
    """

    read: Callable[[ConfigTable], Any]
    required: bool = False
    development_table: Callable[[Path], dict] | None = None


@dataclass(frozen=True)
class Settings:
    source: str
    issuer: str
    environment: str
    service_name: str
    secret_key: str  # the master secret: every purpose key is derived from it (idp.core.hashing)
    instance_dir: Path
    database_url: str
    kv_url: str
    kv_prefix: str
    languages: tuple[str, ...]
    default_language: str
    # keys
    signing_algorithm: str
    keys_passphrase: str
    # tokens (seconds)
    code_ttl: int
    access_token_ttl: int
    id_token_ttl: int
    refresh_token_ttl: int
    # sessions
    session_idle_timeout: int
    session_absolute_timeout: int
    login_transaction_ttl: int
    # assurance
    acr_values: dict[str, str]
    methods: dict[str, MethodSettings]
    clients: dict[str, ClientSettings]
    demo_enabled: bool
    backchannel_logout_timeout: float
    trusted_proxies: int
    session_key_version: int = 1  # raise it to rotate the CSRF/session key alone
    identifier_key_version: int = 1  # the key that hashes national register and card numbers
    keys_reload_interval: int = 30  # seconds before a worker notices a rotated signing key
    connectors: dict[str, Any] = field(default_factory=dict)  # method -> connector settings
    sections: dict[str, Any] = field(default_factory=dict)  # tables read by their own modules

    @property
    def production(self) -> bool:
        return self.environment == "production"

    @property
    def passwords(self) -> Any:  # idp.accounts.passwords.PasswordSettings
        return self.sections.get("passwords")

    @property
    def sms(self) -> Any:  # idp.services.sms.SmsSettings
        return self.sections.get("sms")

    @property
    def mail(self) -> Any:  # idp.services.mail.MailSettings
        return self.sections.get("mail")

    def acr_for(self, level: str) -> str:
        return self.acr_values[level]

    def method_level(self, method: str, client: ClientSettings | None = None) -> str:
        """The level a login method reaches for a client: a passkey reaches high only where allowed."""
        level = self.methods[method].level
        if method == "passkey" and level == "high" and not (client is not None and client.passkey_high):
            return "substantial"
        return level

    def session_level(self, level: str, methods: list[str], client: ClientSettings) -> str | None:
        """The level an SSO session counts for at a client; None when it does not count there.

        A passkey login without a code does not count for a client whose operator keeps the
        SMS code required after a passkey; it reaches "high" only at clients that allow it.
        """
        if "passkey" not in methods or set(methods) & {"itsme", "eid"}:
            return level
        if not client.passkey_satisfies_sms and not set(methods) & {"sms", "totp"}:
            return None
        if level == "high" and not client.passkey_high:
            return "substantial"
        return level

    def level_for_acr(self, acr: str) -> str | None:
        for level, value in self.acr_values.items():
            if value == acr:
                return level
        return None


# ---------------------------------------------------------------------------


def _read_toml(path: Path, errors: list[ConfigError]) -> dict:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        errors.append(ConfigError(str(path), "-", "file not found"))
    except tomllib.TOMLDecodeError as exc:
        errors.append(ConfigError(str(path), "-", f"not valid TOML: {exc}"))
    except OSError as exc:
        errors.append(ConfigError(str(path), "-", f"cannot read: {exc.strerror}"))
    return {}


def _dev_secret(instance_dir: Path, name: str) -> str:
    """A development-only secret generated once and kept in the instance folder."""
    path = instance_dir / name
    if path.exists():
        return path.read_text().strip()
    instance_dir.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(value)
    return value


@dataclass
class _Context:
    """What the steps of :func:`load_settings` share: the file, its data, the errors."""

    root: ConfigTable
    data: dict
    environ: Mapping[str, str]
    instance_dir: Path | None
    production: bool = False
    default_issuer: str = "http://127.0.0.1:5000"


def load_settings(
    path: str | os.PathLike | None = None,
    overrides: dict[str, Any] | None = None,
    environ: dict[str, str] | None = None,
    instance_dir: str | os.PathLike | None = None,
    sections: Mapping[str, Section] | None = None,
    default_issuer: str | None = None,
) -> Settings:
    """Read and validate the provider configuration.

    ``path`` is the provider TOML file (``None``: embedded development defaults).
    ``overrides`` is a dict merged over the file's top-level tables (tests use it).
    ``sections`` are the tables read by other modules (:data:`idp.config.SECTIONS`).
    ``default_issuer`` stands in when no ``[provider] issuer`` is set (``idp serve --port``).
    """
    errors: list[ConfigError] = []
    env = dict(os.environ) if environ is None else environ
    file, data, base_dir = _read_file(path, overrides, errors)
    root = ConfigTable(data, file, errors=errors, base_dir=base_dir, environ=env)
    ctx = _Context(root, data, env, Path(instance_dir) if instance_dir else None)
    if default_issuer:
        ctx.default_issuer = default_issuer
    provider = _read_provider(ctx)
    values = {
        **provider,
        **_read_storage(ctx),
        **_read_keys(ctx),
        **_read_tokens(root),
        **_read_session(root),
        "acr_values": _read_assurance(root),
    }
    connectors = read_connectors(root, ctx.production)
    check_eid_origin(root, values["issuer"], connectors)
    configured = {k for k in connectors if k in LOGIN_METHODS}
    if is_host_name(values["issuer"]):
        configured.add("passkey")  # a WebAuthn RP ID is a domain: an IP-address issuer cannot have passkeys
    methods = read_methods(root, configured)
    demo_enabled = _read_demo(root, ctx.production)
    clients = _read_clients(ctx, values.pop("clients_file"))
    read_sections = _read_sections(ctx, sections or {})
    root.finish()
    if errors:
        raise ConfigErrors(errors)
    return Settings(
        source=file,
        methods=methods,
        clients=clients,
        demo_enabled=demo_enabled,
        connectors=connectors,
        sections=read_sections,
        **values,
    )


def _read_file(path, overrides, errors) -> tuple[str, dict, Path]:
    if path is not None:
        file, data, base_dir = str(path), _read_toml(Path(path), errors), Path(path).resolve().parent
    else:
        file, data, base_dir = "<embedded defaults>", {}, Path.cwd()
    for table_name, values in (overrides or {}).items():
        if isinstance(values, dict) and isinstance(data.get(table_name), dict):
            data[table_name] = {**data[table_name], **values}
        else:
            data[table_name] = values
    return file, data, base_dir


def _read_provider(ctx: _Context) -> dict[str, Any]:
    provider = ctx.root.table("provider")
    environment = provider.str("environment", "development", choices=("development", "production"))
    production = ctx.production = environment == "production"
    inst = ctx.instance_dir or provider.path_value(
        "instance_dir", str(Path.cwd() / "instance"), must_exist=False
    )
    ctx.instance_dir = inst
    issuer = provider.str("issuer", ctx.default_issuer)
    if issuer:
        parts = urlsplit(issuer)
        if parts.query or parts.fragment or issuer.endswith("/"):
            provider.error("issuer", "must be a URL without query, fragment or trailing slash")
        if production and parts.scheme != "https":
            provider.error("issuer", "must be https in production")
    secret_key = _secret_or_development(provider, "secret_key", ctx, "secret_key")
    if secret_key is not None and len(secret_key) < 32:
        provider.error("secret_key", "must be at least 32 characters")
    session_key_version = provider.int("session_key_version", 1, min=1, max=10_000)
    identifier_key_version = provider.int("identifier_key_version", 1, min=1, max=10_000)
    languages = provider.list("languages", list(DEFAULT_LANGUAGES))
    for lang in languages or []:
        if lang not in DEFAULT_LANGUAGES:
            provider.error(
                "languages", f"unsupported language {lang!r}; supported: {', '.join(DEFAULT_LANGUAGES)}"
            )
    out = {
        "issuer": issuer,
        "environment": environment,
        "instance_dir": inst,
        "secret_key": secret_key,
        "languages": tuple(languages or ()),
        "default_language": provider.str("default_language", "fr", choices=DEFAULT_LANGUAGES),
        "service_name": provider.str("service_name", "MyOnlineServices"),
        "trusted_proxies": provider.int("trusted_proxies", 0, min=0, max=5),
        "session_key_version": session_key_version,
        "identifier_key_version": identifier_key_version,
        "clients_file": provider.path_value("clients_file", None),
    }
    provider.finish()
    return out


def _secret_or_development(t: ConfigTable, name: str, ctx: _Context, development_file: str) -> str | None:
    """A secret from the file; required in production, generated once in development."""
    if t.has(name):
        return t.secret(name)
    if ctx.production:
        t.error(name, "is required in production (env:NAME or file:/path)")
        return None
    return _dev_secret(ctx.instance_dir, development_file)


def _read_storage(ctx: _Context) -> dict[str, Any]:
    storage, production = ctx.root.table("storage"), ctx.production
    default_db = f"sqlite:///{ctx.instance_dir / 'idp.sqlite3'}"
    database_url = (
        storage.secret("database_url")
        if str(storage.data.get("database_url", "")).startswith(("env:", "file:"))
        else storage.str("database_url", default_db)
    )
    if database_url and database_url.startswith("sqlite:///") and not database_url.startswith("sqlite:////"):
        # A relative SQLite path is taken from the configuration file's folder.
        database_url = "sqlite:///" + str((storage.base_dir / database_url[len("sqlite:///") :]).resolve())
    if database_url and database_url.split(":", 1)[0].split("+")[0] not in ("sqlite", "postgresql"):
        storage.error("database_url", "must be a sqlite:/// or postgresql:// URL")
    kv_url = storage.str("kv_url", "memory://")
    kv_prefix = storage.str("kv_prefix", "idp:")
    if kv_prefix is not None and not (1 <= len(kv_prefix) <= 64):
        storage.error("kv_prefix", "must be 1 to 64 characters")
    if kv_url and not kv_url.startswith(("memory://", "redis://", "rediss://")):
        storage.error("kv_url", "must be memory:// or redis://host:port/db")
    if production and kv_url == "memory://":
        storage.error("kv_url", "memory:// keeps counters in one worker; production needs redis://")
    if production and database_url and database_url.startswith("sqlite"):
        storage.error("database_url", "SQLite is the embedded default; production needs PostgreSQL")
    storage.finish()
    return {"database_url": database_url, "kv_url": kv_url, "kv_prefix": kv_prefix}


def _read_keys(ctx: _Context) -> dict[str, Any]:
    keys = ctx.root.table("keys")
    algorithm = keys.str("algorithm", "RS256", choices=SIGNING_ALGORITHMS)
    passphrase = _secret_or_development(keys, "passphrase", ctx, "keys_passphrase")
    reload_interval = keys.int("reload_interval", 30, min=1, max=300)
    keys.finish()
    return {
        "signing_algorithm": algorithm,
        "keys_passphrase": passphrase,
        "keys_reload_interval": reload_interval,
    }


def _read_tokens(root: ConfigTable) -> dict[str, Any]:
    tokens = root.table("tokens")
    out = {
        "code_ttl": tokens.int("authorization_code_ttl", 60, min=10, max=600),
        "access_token_ttl": tokens.int("access_token_ttl", 600, min=60, max=86400),
        "id_token_ttl": tokens.int("id_token_ttl", 600, min=60, max=86400),
        "refresh_token_ttl": tokens.int("refresh_token_ttl", 30 * 86400, min=600, max=365 * 86400),
    }
    tokens.finish()
    return out


def _read_session(root: ConfigTable) -> dict[str, Any]:
    session = root.table("session")
    out = {
        "session_idle_timeout": session.int("idle_timeout", 1800, min=60),
        "session_absolute_timeout": session.int("absolute_timeout", 12 * 3600, min=300),
        "login_transaction_ttl": session.int("login_transaction_ttl", 900, min=60, max=3600),
        "backchannel_logout_timeout": session.int("backchannel_logout_timeout", 5, min=1, max=30),
    }
    session.finish()
    return out


def _read_assurance(root: ConfigTable) -> dict[str, str]:
    assurance = root.table("assurance")
    acr_table = assurance.table("acr_values")
    acr_values = {level: acr_table.str(level, DEFAULT_ACR[level]) for level in LEVELS}
    acr_table.finish()
    if len(set(acr_values.values())) != len(acr_values):
        assurance.error("acr_values", "each level needs its own acr value")
    assurance.finish()
    return acr_values


def _read_demo(root: ConfigTable, production: bool) -> bool:
    demo = root.table("demo")
    enabled = demo.bool("enabled", not production)
    if production and enabled:
        demo.error("enabled", "the demo relying party is for development only")
    demo.finish()
    return enabled


def _read_clients(ctx: _Context, clients_file: Path | None) -> dict[str, ClientSettings]:
    errors = ctx.root.errors
    client_tables = ctx.root.tables("clients")
    if clients_file is not None:
        cdata = _read_toml(clients_file, errors)
        croot = ConfigTable(
            cdata, str(clients_file), errors=errors, base_dir=clients_file.parent, environ=ctx.environ
        )
        client_tables += croot.tables("clients")
        croot.finish()
    clients: dict[str, ClientSettings] = {}
    for ct in client_tables:
        client = read_client(ct, ctx.production)
        if client is None:
            continue
        if client.client_id in clients:
            ct.error("client_id", f"duplicate client id {client.client_id!r}")
        clients[client.client_id] = client
    return clients


def _read_sections(ctx: _Context, sections: Mapping[str, Section]) -> dict[str, Any]:
    out = {}
    for name, section in sections.items():
        if section.development_table is not None and not ctx.production:
            ctx.root.data.setdefault(name, section.development_table(ctx.instance_dir))
        table = ctx.root.table(name, required=section.required)
        value = out[name] = section.read(table)
        backend = getattr(value, "backend", None)
        if ctx.production and backend in DEVELOPMENT_BACKENDS:
            ctx.root.error(f"{name}.backend", f"{backend!r} is a development backend, refused in production")
    return out
