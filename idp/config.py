"""The one list of configuration tables read outside :mod:`idp.core.settings`.

Each table belongs to the module that uses it and is read by that module's
settings class (``from_table``); :func:`load` hands the list to
:func:`idp.core.settings.load_settings`, so that one pass validates everything
and the ground floor never imports the packages above it. ``create_app`` and
``idp config check`` both load through here. A new feature table is one line.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from idp.accounts.legacy_source import LegacySettings
from idp.accounts.passkeys import PasskeySettings
from idp.accounts.passwords import PasswordSettings
from idp.core.branding import BrandingSettings
from idp.core.logs import LoggingSettings
from idp.core.metrics import MetricsSettings
from idp.core.retention import RetentionSettings
from idp.core.settings import Section, Settings, load_settings
from idp.login.otp import OtpSettings
from idp.oidc.claims import ClaimsSettings
from idp.selfservice.rules import RegistrationSettings
from idp.services.mail import MailSettings
from idp.services.queue import QueueSettings
from idp.services.sms import SmsSettings


def _development_outbox(instance_dir: Path) -> dict:
    return {"backend": "outbox", "outbox": str(instance_dir / "outbox.jsonl")}


SECTIONS: dict[str, Section] = {
    "passwords": Section(PasswordSettings.from_table),
    "sms": Section(SmsSettings.from_table, required=True, development_table=_development_outbox),
    "mail": Section(
        MailSettings.from_table,
        required=True,
        development_table=lambda inst: {**_development_outbox(inst), "sender": "no-reply@example.org"},
    ),
    "otp": Section(OtpSettings.from_table),
    "registration": Section(RegistrationSettings.from_table),
    "legacy": Section(LegacySettings.from_table),
    "retention": Section(RetentionSettings.from_table),
    "claims": Section(ClaimsSettings.from_table),
    "logging": Section(LoggingSettings.from_table),
    "metrics": Section(MetricsSettings.from_table),
    "outbound": Section(QueueSettings.from_table),
    "passkeys": Section(PasskeySettings.from_table),
    "branding": Section(BrandingSettings.from_table),
}


def load(
    path: str | os.PathLike | None = None,
    overrides: dict[str, Any] | None = None,
    environ: dict[str, str] | None = None,
    instance_dir: str | os.PathLike | None = None,
    default_issuer: str | None = None,
) -> Settings:
    """Read and validate the whole configuration (see :func:`idp.core.settings.load_settings`)."""
    return load_settings(
        path, overrides, environ, instance_dir, sections=SECTIONS, default_issuer=default_issuer
    )
