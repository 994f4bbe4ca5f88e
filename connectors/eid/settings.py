"""Configuration of the Belgian eID login (the ``[connectors.eid]`` table).

Read strictly with :class:`connectors.base.ConfigTable`: every problem is
reported with file, key and reason, unknown keys are errors, and nothing is
raised. CA files are loaded and parsed here so a wrong path or a file that is
not a CA certificate stops start-up rather than the first login.
"""

from __future__ import annotations

import builtins
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509

from connectors.base import LEVELS
from connectors.config import ConfigTable
from connectors.eid.ocsp import MODES, OcspSettings
from connectors.eid.page import EidPageSettings

DEV_HOSTS = ("127.0.0.1", "localhost", "[::1]")


@dataclass(frozen=True)
class EidSettings:
    trust_anchors: tuple[x509.Certificate, ...]
    intermediates: tuple[x509.Certificate, ...] = ()
    # Optional pin: when set, the card's National Register certificate must also be one of these.
    rrn_certificates: tuple[x509.Certificate, ...] = ()
    ocsp: OcspSettings = field(default_factory=OcspSettings)
    allowed_origins: tuple[str, ...] = ()
    level: str = "high"
    challenge_ttl: int = 300
    page: EidPageSettings = field(default_factory=EidPageSettings)

    @classmethod
    def from_table(cls, t: ConfigTable) -> EidSettings:
        trust_anchors = _certificates(t, "trust_anchors", required=True, must_be_ca=True)
        intermediates = _certificates(t, "intermediates", required=False, must_be_ca=True)
        rrn_certificates = _certificates(t, "rrn_certificates", required=False, must_be_ca=False)
        o = t.table("ocsp")
        ocsp = OcspSettings(
            mode=o.str("mode", "require", choices=MODES),
            timeout=o.int("timeout", 3, min=1, max=30),
            max_age=o.int("max_age", 600, min=30, max=7 * 24 * 3600),
            url_override=_url(o, "url_override"),
        )
        o.finish()
        # ConfigTable.list's default ``item=str`` resolves to the method ConfigTable.str: pass it.
        origins = t.list("allowed_origins", item=builtins.str)
        if origins is not None and not origins:
            t.error("allowed_origins", "must name at least one origin")
        for i, origin in enumerate(origins or []):
            reason = origin_problem(origin)
            if reason:
                t.error(f"allowed_origins[{i}]", reason)
        level = t.str("level", "high", choices=LEVELS)
        challenge_ttl = t.int("challenge_ttl", 300, min=30, max=3600)
        page = EidPageSettings.from_table(t.table("page"))
        t.finish()
        return cls(
            trust_anchors=trust_anchors,
            intermediates=intermediates,
            rrn_certificates=rrn_certificates,
            ocsp=ocsp,
            allowed_origins=tuple(origins or ()),
            level=level,
            challenge_ttl=challenge_ttl,
            page=page,
        )


def origin_problem(origin: str) -> str | None:
    """Why ``origin`` is not a serialised web origin we accept (None when it is fine)."""
    parts = urllib.parse.urlsplit(origin)
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        return "has an invalid port"
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return "must be an origin such as https://login.example.be"
    if parts.username or parts.password or parts.path or parts.query or parts.fragment:
        return "must be scheme://host[:port] with no path, query or trailing slash"
    if origin != origin.lower():
        return "must be written in lower case, as browsers send it"
    if parts.scheme == "http" and parts.netloc.rsplit(":", 1)[0] not in DEV_HOSTS:
        return "must use https (http is allowed for 127.0.0.1, localhost and [::1] only)"
    return None


def _url(t: ConfigTable, name: str) -> str | None:
    value = t.str(name, None)
    if value is not None and urllib.parse.urlsplit(value).scheme not in ("http", "https"):
        t.error(name, "must be an http(s) URL")
        return None
    return value


def _certificates(
    t: ConfigTable, name: str, required: bool, must_be_ca: bool
) -> tuple[x509.Certificate, ...]:
    paths = t.list(name, item=builtins.str) if required else t.list(name, [], item=builtins.str)
    if required and paths == []:
        t.error(name, "must name at least one file")
    certs: list[x509.Certificate] = []
    for i, raw in enumerate(paths or []):
        path = Path(raw)
        if not path.is_absolute():
            path = t.base_dir / path
        try:
            loaded = load_certificates(path.read_bytes())
        except OSError as exc:
            t.error(f"{name}[{i}]", f"cannot read {path}: {exc.strerror or exc}")
            continue
        except ValueError:
            t.error(f"{name}[{i}]", f"{path} is not a PEM or DER X.509 certificate")
            continue
        for cert in loaded:
            if must_be_ca and not _is_ca(cert):
                t.error(f"{name}[{i}]", f"{path}: {cert.subject.rfc4514_string()} is not a CA certificate")
        certs.extend(loaded)
    return tuple(certs)


def load_certificates(data: bytes) -> list[x509.Certificate]:
    if b"-----BEGIN" in data:
        return x509.load_pem_x509_certificates(data)
    return [x509.load_der_x509_certificate(data)]


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False
