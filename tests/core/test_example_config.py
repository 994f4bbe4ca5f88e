"""The example configuration lists every option and is valid once its secrets and files exist."""

import re
import shutil
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from idp.config import load as load_settings
from tests.support.eid_pki import EidPki

CONFIG = Path(__file__).resolve().parents[2] / "config"
SECRETS = {
    "IDP_SECRET_KEY": "s" * 48,
    "IDP_DATABASE_URL": "postgresql://idp@db.example.internal/idp",
    "IDP_KEYS_PASSPHRASE": "a passphrase for the keys",
    "SMS_GATEWAY_TOKEN": "Bearer abc",
    "SMTP_PASSWORD": "smtp password",
    "ITSME_KEYS_PASSPHRASE": "itsme keys passphrase",
    "PORTAL_CLIENT_SECRET": "p" * 40,
}


def _example_in(tmp_path: Path) -> Path:
    shutil.copy(CONFIG / "idp.example.toml", tmp_path / "idp.toml")
    shutil.copy(CONFIG / "clients.example.toml", tmp_path / "clients.toml")
    pki = EidPki("http://127.0.0.1:9/ocsp")
    (tmp_path / "eid").mkdir()
    pem = {
        "belgium-root-ca4.pem": pki.root.cert,
        "belgium-root-ca6.pem": pki.root.cert,
        "citizen-ca.pem": pki.citizen_ca.cert,
        "foreigner-ca.pem": pki.citizen_ca.cert,
    }
    for name, cert in pem.items():
        (tmp_path / "eid" / name).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    text = (tmp_path / "idp.toml").read_text()
    text = text.replace('# clients_file = "clients.toml"', 'clients_file = "clients.toml"')
    (tmp_path / "idp.toml").write_text(text)
    return tmp_path / "idp.toml"


def test_the_example_configuration_is_valid_with_its_secrets_and_files(tmp_path):
    settings = load_settings(_example_in(tmp_path), environ=SECRETS, instance_dir=tmp_path / "instance")
    assert settings.production
    assert set(settings.clients) == {"portal", "app"}
    assert settings.sections["otp"].code_ttl == 300
    assert settings.connectors["itsme"].service_code == "YOUR_SERVICE_CODE"


def test_every_settings_key_read_by_the_provider_appears_in_the_example():
    """A key a module reads (t.str("name"...)) must be shown in the example configuration."""
    example = (CONFIG / "idp.example.toml").read_text() + (CONFIG / "clients.example.toml").read_text()
    sources = [
        "idp/core/settings.py",
        "idp/services/sms.py",
        "idp/services/mail.py",
        "idp/accounts/passwords.py",
        "idp/accounts/legacy_source.py",
        "idp/login/otp.py",
        "idp/selfservice/registration.py",
        "idp/core/retention.py",
        "idp/oidc/claims.py",
        "idp/core/disclosure.py",
        "idp/core/logs.py",
        "idp/core/metrics.py",
        "idp/accounts/passkeys.py",
        "idp/core/branding.py",
        "connectors/itsme/settings.py",
        "connectors/eid/settings.py",
    ]
    root = CONFIG.parent
    missing = []
    for source in sources:
        for key in re.findall(
            r'\b\w+\.(?:str|int|bool|list|secret|table|tables|path_value)\(\s*"(\w+)"',
            (root / source).read_text(),
        ):
            if not re.search(rf"^\s*#?\s*\[*[\w.]*\b{key}\b", example, re.M):
                missing.append(f"{source}: {key}")
    assert not missing, missing
