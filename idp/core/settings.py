"""Typed provider settings, read from TOML files and validated once at start-up.

Every option has one home here. :func:`load_settings` reads the provider file
(and the clients file it names), collects *every* error with file, key and
reason, rejects unknown keys and raises :class:`connectors.base.ConfigErrors`
once. ``idp config check`` runs the same pass without starting anything.

Without a configuration file the provider runs on its embedded development
defaults: SQLite and keys under the instance folder, secrets generated on
first start, the development outbox for SMS and e-mail, the demo client.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from connectors.base import LEVELS, ConfigError, ConfigErrors, ConfigTable

DEFAULT_LANGUAGES = ("fr", "nl", "de", "en")
LOGIN_METHODS = ("password", "itsme", "eid", "contract", "passkey")
SCOPES = ("openid", "profile", "email", "phone", "address", "offline_access")
SIGNING_ALGORITHMS = ("RS256", "PS256", "ES256")
AUTH_METHODS = ("client_secret_basic", "client_secret_post", "private_key_jwt", "none")

# RFC 8176 values recorded for each method when the connector does not say more.
DEFAULT_ACR = {
    "low": "urn:idp:acr:low",
    "substantial": "urn:idp:acr:substantial",
    "high": "urn:idp:acr:high",
}


@dataclass(frozen=True)
class MethodSettings:
    name: str
    enabled: bool
    level: str
    disabled_message: dict[str, str]
    register: bool = False  # may a person unknown to us get a new account through this method?


@dataclass(frozen=True)
class ClientSettings:
    client_id: str
    name: str
    type: str  # "confidential" | "public"
    token_endpoint_auth_method: str
    client_secret: str | None
    jwks: dict | None
    redirect_uris: tuple[str, ...]
    post_logout_redirect_uris: tuple[str, ...]
    backchannel_logout_uri: str | None
    backchannel_logout_session_required: bool
    scopes: tuple[str, ...]
    methods: tuple[str, ...]
    min_level: str
    first_party: bool
    grant_types: tuple[str, ...]
    disabled_methods_message: dict[str, str] = field(default_factory=dict)
    passkey_satisfies_sms: bool = True  # a passkey login needs no SMS code after it
    passkey_high: bool = False  # a passkey login may reach "high" (when [methods.passkey] says so)

    @property
    def is_public(self) -> bool:
        return self.type == "public"


@dataclass(frozen=True)
class Settings:
    source: str
    issuer: str
    environment: str
    service_name: str
    secret_key: str
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
    passwords: Any = None  # idp.passwords.PasswordSettings
    sms: Any = None  # idp.sms.SmsSettings
    mail: Any = None  # idp.mail.MailSettings
    connectors: dict[str, Any] = field(default_factory=dict)  # method -> connector settings
    sections: dict[str, Any] = field(default_factory=dict)  # feature tables read by their own modules
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def production(self) -> bool:
        return self.environment == "production"

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


def _check_url(
    t: ConfigTable, key: str, value: str | None, production: bool, allow_custom_scheme=False
) -> None:
    if not value:
        return
    parts = urlsplit(value)
    if parts.fragment:
        t.error(key, "must not contain a fragment")
    if parts.scheme == "https" and parts.netloc:
        return
    if parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost", "[::1]", "::1"):
        return
    if parts.scheme == "http" and not production:
        return
    if allow_custom_scheme and parts.scheme not in ("http", "https", "") and "." in parts.scheme:
        return  # private-use scheme of a native app (RFC 8252 section 7.1): reverse domain name
    t.error(
        key,
        f"{value!r} must be an https URL"
        + (" or a reverse-domain private-use scheme" if allow_custom_scheme else ""),
    )


def read_messages(t: ConfigTable, name: str) -> dict[str, str]:
    """A table of texts by language code (an operator's message in every language it wrote)."""
    table = t.table(name)
    out = {}
    for lang in list(table.data):
        value = table.str(lang)
        if value is not None:
            out[lang] = value
    table.finish()
    return out


def _read_methods(t: ConfigTable, configured: set[str]) -> dict[str, MethodSettings]:
    methods_table = t.table("methods")
    defaults = {
        "password": "substantial",
        "itsme": "high",
        "eid": "high",
        "contract": "low",
        "passkey": "substantial",
    }
    out = {}
    for name in LOGIN_METHODS:
        m = methods_table.table(name)
        enabled = m.bool("enabled", name == "password" or name in configured)
        if enabled and name in ("itsme", "eid") and name not in configured:
            m.error("enabled", f"the {name} login needs a [connectors.{name}] table")
        if enabled and name == "passkey" and name not in configured:
            m.error("enabled", "passkeys need a provider.issuer with a host name, not an IP address")
        out[name] = MethodSettings(
            name=name,
            enabled=enabled,
            level=m.str("level", defaults[name], choices=LEVELS),
            disabled_message=read_messages(m, "disabled_message"),
            register=m.bool("register", False) if name in ("itsme", "eid") else False,
        )
        m.finish()
    methods_table.finish()
    return out


def _read_client(
    t: ConfigTable, production: bool, methods: dict[str, MethodSettings]
) -> ClientSettings | None:
    client_id = t.str("client_id")
    kind = t.str("type", choices=("confidential", "public"))
    default_auth = "none" if kind == "public" else "client_secret_basic"
    auth = t.str("token_endpoint_auth_method", default_auth, choices=AUTH_METHODS)
    secret = t.secret("client_secret", None)
    jwks = None
    if t.has("jwks_file"):
        p = t.path_value("jwks_file")
        if p is not None and p.exists():
            try:
                import json

                jwks = json.loads(p.read_text())
                if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
                    t.error("jwks_file", "must hold a JSON Web Key Set")
                    jwks = None
                elif any(("d" in k or k.get("kty") == "oct") for k in jwks["keys"]):
                    t.error("jwks_file", "must hold public keys only")
                    jwks = None
            except ValueError as exc:
                t.error("jwks_file", f"is not valid JSON: {exc}")
    if kind == "public" and auth != "none":
        t.error("token_endpoint_auth_method", "a public client authenticates with none")
    if kind == "confidential":
        if auth == "none":
            t.error("token_endpoint_auth_method", "a confidential client must authenticate")
        if auth in ("client_secret_basic", "client_secret_post") and not t.has("client_secret"):
            t.error("client_secret", f"is required for {auth}")
        if auth in ("client_secret_basic", "client_secret_post") and secret is not None and len(secret) < 32:
            t.error("client_secret", "must be at least 32 characters of high-entropy random data")
        if auth == "private_key_jwt" and jwks is None and not t.has("jwks_file"):
            t.error("jwks_file", "is required for private_key_jwt")
    redirect_uris = t.list("redirect_uris")
    for i, uri in enumerate(redirect_uris or []):
        _check_url(t, f"redirect_uris[{i}]", uri, production, allow_custom_scheme=kind == "public")
    if redirect_uris == []:
        t.error("redirect_uris", "needs at least one URI")
    post_logout = t.list("post_logout_redirect_uris", [])
    for i, uri in enumerate(post_logout or []):
        _check_url(
            t, f"post_logout_redirect_uris[{i}]", uri, production, allow_custom_scheme=kind == "public"
        )
    bcl = t.str("backchannel_logout_uri", None)
    _check_url(t, "backchannel_logout_uri", bcl, production)
    scopes = t.list("scopes", list(SCOPES))
    for s in scopes or []:
        if s not in SCOPES:
            t.error("scopes", f"unknown scope {s!r}; known: {', '.join(SCOPES)}")
    client_methods = t.list("methods", list(LOGIN_METHODS))
    for m in client_methods or []:
        if m not in LOGIN_METHODS:
            t.error("methods", f"unknown login method {m!r}; known: {', '.join(LOGIN_METHODS)}")
    grant_types = t.list("grant_types", ["authorization_code", "refresh_token"])
    for g in grant_types or []:
        if g not in ("authorization_code", "refresh_token"):
            t.error("grant_types", f"unsupported grant type {g!r}")
    client = ClientSettings(
        client_id=client_id or "",
        name=t.str("name", client_id or ""),
        type=kind or "confidential",
        token_endpoint_auth_method=auth or default_auth,
        client_secret=secret,
        jwks=jwks,
        redirect_uris=tuple(redirect_uris or ()),
        post_logout_redirect_uris=tuple(post_logout or ()),
        backchannel_logout_uri=bcl,
        backchannel_logout_session_required=t.bool("backchannel_logout_session_required", True),
        scopes=tuple(scopes or ()),
        methods=tuple(client_methods or ()),
        min_level=t.str("min_level", "low", choices=LEVELS),
        first_party=t.bool("first_party", False),
        grant_types=tuple(grant_types or ()),
        disabled_methods_message=read_messages(t, "disabled_message"),
        passkey_satisfies_sms=t.bool("passkey_satisfies_sms", True),
        passkey_high=t.bool("passkey_high", False),
    )
    t.finish()
    return client if client_id else None


def _is_host_name(url: str | None) -> bool:
    host = urlsplit(url or "").hostname or ""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return bool(host)
    return False


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


def load_settings(
    path: str | os.PathLike | None = None,
    overrides: dict[str, Any] | None = None,
    environ: dict[str, str] | None = None,
    instance_dir: str | os.PathLike | None = None,
) -> Settings:
    """Read and validate the provider configuration.

    ``path`` is the provider TOML file (``None``: embedded development defaults).
    ``overrides`` is a dict merged over the file's top-level tables (tests use it).
    """
    errors: list[ConfigError] = []
    env = dict(os.environ) if environ is None else environ
    if path is not None:
        file = str(path)
        data = _read_toml(Path(path), errors)
        base_dir = Path(path).resolve().parent
    else:
        file = "<embedded defaults>"
        data = {}
        base_dir = Path.cwd()
    for table_name, values in (overrides or {}).items():
        if isinstance(values, dict) and isinstance(data.get(table_name), dict):
            data[table_name] = {**data[table_name], **values}
        else:
            data[table_name] = values
    root = ConfigTable(data, file, errors=errors, base_dir=base_dir, environ=env)

    provider = root.table("provider")
    environment = provider.str("environment", "development", choices=("development", "production"))
    production = environment == "production"
    inst = Path(instance_dir) if instance_dir else None
    inst = inst or provider.path_value("instance_dir", str(Path.cwd() / "instance"), must_exist=False)
    issuer = provider.str("issuer", "http://127.0.0.1:5000")
    if issuer:
        parts = urlsplit(issuer)
        if parts.query or parts.fragment or issuer.endswith("/"):
            provider.error("issuer", "must be a URL without query, fragment or trailing slash")
        if production and parts.scheme != "https":
            provider.error("issuer", "must be https in production")
    if provider.has("secret_key"):
        secret_key = provider.secret("secret_key")
    elif production:
        provider.error("secret_key", "is required in production (env:NAME or file:/path)")
        secret_key = None
    else:
        secret_key = _dev_secret(inst, "secret_key")
    if secret_key is not None and len(secret_key) < 32:
        provider.error("secret_key", "must be at least 32 characters")
    languages = provider.list("languages", list(DEFAULT_LANGUAGES))
    for lang in languages or []:
        if lang not in DEFAULT_LANGUAGES:
            provider.error(
                "languages", f"unsupported language {lang!r}; supported: {', '.join(DEFAULT_LANGUAGES)}"
            )
    default_language = provider.str("default_language", "fr", choices=DEFAULT_LANGUAGES)
    service_name = provider.str("service_name", "MyOnlineServices")
    trusted_proxies = provider.int("trusted_proxies", 0, min=0, max=5)
    clients_file = provider.path_value("clients_file", None)
    provider.finish()

    storage = root.table("storage")
    default_db = f"sqlite:///{inst / 'idp.sqlite3'}"
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

    keys = root.table("keys")
    algorithm = keys.str("algorithm", "RS256", choices=SIGNING_ALGORITHMS)
    if keys.has("passphrase"):
        passphrase = keys.secret("passphrase")
    elif production:
        keys.error("passphrase", "is required in production (env:NAME or file:/path)")
        passphrase = None
    else:
        passphrase = _dev_secret(inst, "keys_passphrase")
    keys.finish()

    tokens = root.table("tokens")
    code_ttl = tokens.int("authorization_code_ttl", 60, min=10, max=600)
    access_ttl = tokens.int("access_token_ttl", 600, min=60, max=86400)
    id_ttl = tokens.int("id_token_ttl", 600, min=60, max=86400)
    refresh_ttl = tokens.int("refresh_token_ttl", 30 * 86400, min=600, max=365 * 86400)
    tokens.finish()

    session = root.table("session")
    idle = session.int("idle_timeout", 1800, min=60)
    absolute = session.int("absolute_timeout", 12 * 3600, min=300)
    login_ttl = session.int("login_transaction_ttl", 900, min=60, max=3600)
    bcl_timeout = session.int("backchannel_logout_timeout", 5, min=1, max=30)
    session.finish()

    assurance = root.table("assurance")
    acr_table = assurance.table("acr_values")
    acr_values = {level: acr_table.str(level, DEFAULT_ACR[level]) for level in LEVELS}
    acr_table.finish()
    if len(set(acr_values.values())) != len(acr_values):
        assurance.error("acr_values", "each level needs its own acr value")
    assurance.finish()

    connector_data = data.get("connectors") if isinstance(data.get("connectors"), dict) else {}
    configured = {k for k in connector_data if k in LOGIN_METHODS}
    if _is_host_name(issuer):
        configured.add("passkey")  # a WebAuthn RP ID is a domain: an IP-address issuer cannot have passkeys
    methods = _read_methods(root, configured)
    passwords, sms, mail, connectors = _read_services(root, inst, production)
    _check_eid_origin(root, issuer, connectors)

    demo = root.table("demo")
    demo_enabled = demo.bool("enabled", not production)
    if production and demo_enabled:
        demo.error("enabled", "the demo relying party is for development only")
    demo.finish()

    clients: dict[str, ClientSettings] = {}
    client_tables = root.tables("clients")
    if clients_file is not None:
        cdata = _read_toml(clients_file, errors)
        croot = ConfigTable(
            cdata, str(clients_file), errors=errors, base_dir=clients_file.parent, environ=env
        )
        client_tables += croot.tables("clients")
        croot.finish()
    for ct in client_tables:
        client = _read_client(ct, production, methods)
        if client is None:
            continue
        if client.client_id in clients:
            ct.error("client_id", f"duplicate client id {client.client_id!r}")
        clients[client.client_id] = client

    sections = _read_sections(root)
    extra: dict[str, Any] = {}
    root.finish()

    if errors:
        raise ConfigErrors(errors)
    return Settings(
        source=file,
        issuer=issuer,
        environment=environment,
        service_name=service_name,
        secret_key=secret_key,
        instance_dir=inst,
        database_url=database_url,
        kv_url=kv_url,
        kv_prefix=kv_prefix,
        languages=tuple(languages),
        default_language=default_language,
        signing_algorithm=algorithm,
        keys_passphrase=passphrase,
        code_ttl=code_ttl,
        access_token_ttl=access_ttl,
        id_token_ttl=id_ttl,
        refresh_token_ttl=refresh_ttl,
        session_idle_timeout=idle,
        session_absolute_timeout=absolute,
        login_transaction_ttl=login_ttl,
        acr_values=acr_values,
        methods=methods,
        clients=clients,
        demo_enabled=demo_enabled,
        backchannel_logout_timeout=bcl_timeout,
        trusted_proxies=trusted_proxies,
        passwords=passwords,
        sms=sms,
        mail=mail,
        connectors=connectors,
        sections=sections,
        extra=extra,
    )


def _read_services(root: ConfigTable, inst: Path, production: bool):
    """The tables owned by other modules, each read by its own settings class."""
    from idp.accounts.passwords import PasswordSettings
    from idp.services.mail import MailSettings
    from idp.services.sms import SmsSettings

    outbox = str(inst / "outbox.jsonl")
    if not production:
        # Embedded development defaults: every message lands in the outbox file.
        root.data.setdefault("sms", {"backend": "outbox", "outbox": outbox})
        root.data.setdefault(
            "mail", {"backend": "outbox", "outbox": outbox, "sender": "no-reply@example.org"}
        )
    passwords = PasswordSettings.from_table(root.table("passwords"))
    sms = SmsSettings.from_table(root.table("sms", required=True))
    mail = MailSettings.from_table(root.table("mail", required=True))
    for name, value in (("sms", sms), ("mail", mail)):
        if production and value.backend in ("console", "outbox"):
            root.error(
                f"{name}.backend", f"{value.backend!r} is a development backend, refused in production"
            )
    connectors = {}
    ctable = root.table("connectors")
    for name in list(ctable.data):
        t = ctable.table(name)
        if name == "itsme":
            from connectors.itsme import ItsmeSettings

            connectors[name] = ItsmeSettings.from_table(t)
        elif name == "eid":
            from connectors.eid import EidSettings

            connectors[name] = EidSettings.from_table(t)
        else:
            ctable.error(
                name, f"unknown connector; known: {', '.join(m for m in LOGIN_METHODS if m != 'password')}"
            )
    ctable.finish()
    return passwords, sms, mail, connectors


def _check_eid_origin(root: ConfigTable, issuer: str | None, connectors: dict) -> None:
    """The card signs the login page's origin, which is the issuer's: it must be allowed."""
    eid = connectors.get("eid")
    if eid is None or not issuer:
        return
    parts = urlsplit(issuer)
    origin = f"{parts.scheme}://{parts.netloc}"
    if origin not in eid.allowed_origins:
        root.error(
            "connectors.eid.allowed_origins",
            f"must include the provider's own origin {origin!r} (from provider.issuer)",
        )


# Feature tables read by the module that owns them: name -> "module:Class" with a
# ``from_table(ConfigTable)`` classmethod (called even when the table is absent,
# so defaults apply).
SECTIONS = {
    "otp": "idp.login.otp:OtpSettings",
    "registration": "idp.selfservice.registration:RegistrationSettings",
    "passkeys": "idp.accounts.passkeys:PasskeySettings",
}


def _read_sections(root: ConfigTable) -> dict[str, Any]:
    import importlib

    out = {}
    for name, target in SECTIONS.items():
        module_name, cls_name = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            root.table(name)  # feature not built yet: the table is accepted as is
            continue
        out[name] = getattr(module, cls_name).from_table(root.table(name))
    return out
