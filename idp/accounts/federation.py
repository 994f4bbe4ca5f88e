"""Which account a federated login (itsme, eID) belongs to.

A connector proves an :class:`~connectors.base.Identity`; this module finds
or makes the account for it, in this order:

1. a known link (issuer, subject) -> its account;
2. an unknown subject with a national register number we know -> that account,
   linked anew (itsme's pairwise ``sub`` changes when a person re-creates their
   itsme account; the eID subject changes with every new card);
3. a customer record with that national register number -> the account of that
   customer (a person who first used a password) or a new account made from
   the record;
4. a new account from the identity's claims, when the operator allows
   registration through that method; otherwise :class:`FederationError`
   ``no_account``.

Never by e-mail address or phone number: those are not proofs of identity.
National register numbers are only stored and compared as keyed hashes
(:mod:`idp.hashing`) and never logged.

Two first logins of the same person at the same moment end in one account:
the unique constraints on ``federated_identities (issuer, subject)`` and
``accounts.national_number_hash`` refuse the second insert, which is rolled
back and resolved again (it then finds what the first one made).
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections.abc import Mapping
from typing import Any

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from connectors.base import Identity
from idp.accounts import identifiers
from idp.core import audit
from idp.core.hashing import card_number_hash, national_number_hash
from idp.core.phones import PhoneError, normalize_phone
from idp.core.storage import Account, Customer, FederatedIdentity, db

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
_ADDRESS_FIELDS = ("formatted", "street_address", "postal_code", "locality", "region", "country")
_BIRTHDATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class FederationError(Exception):
    """No account may be used for this identity.

    ``code``: ``no_account`` (unknown person and registration through this
    method is off, or the records contradict each other) or
    ``account_disabled``. ``detail`` is for the log only.
    """

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code
        self.detail = detail


def resolve_identity(identity: Identity, *, register: bool) -> Account:
    """The active account for ``identity``, linking or creating it; see the module docstring.

    Commits the session. Raises :class:`FederationError`.
    """
    if not identity.issuer or not identity.subject:
        raise ValueError("an identity needs an issuer and a subject")
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            return _resolve(identity, register)
        except IntegrityError:
            # A concurrent first login of the same person won the insert: start over.
            db.session.rollback()
            log.info("federated login raced another one (attempt %d, method=%s)", attempt, identity.method)
            if attempt == MAX_ATTEMPTS:
                raise
    raise AssertionError("unreachable")


CARD_SUBJECT = "card-hmac:"  # an eID card link's subject: this prefix and the card number's keyed hash


def stored_subject(identity: Identity) -> str:
    """The subject as stored: a card number (the eID subject) is kept only as a keyed hash."""
    if identity.card_number and identity.subject == identity.card_number:
        return CARD_SUBJECT + card_number_hash(identity.subject)
    return identity.subject


def _resolve(identity: Identity, register: bool) -> Account:
    now = int(time.time())
    # Hashes made under an older identifier key are rewritten under the current one first.
    identifiers.rekey(national_number=identity.national_number, card_number=identity.card_number)
    subject = stored_subject(identity)
    nn_hash = national_number_hash(identity.national_number) if identity.national_number else None

    link = db.session.scalar(
        select(FederatedIdentity).where(
            FederatedIdentity.issuer == identity.issuer, FederatedIdentity.subject == subject
        )
    )
    if link is not None:
        account = db.session.get(Account, link.account_id)
        _check_usable(account, nn_hash)
        link.last_login_at = now
        _complete_profile(account, identity, nn_hash)
        db.session.commit()
        return account

    account, event, via = _find_or_create(identity, nn_hash, register)
    _check_usable(account, nn_hash)
    _complete_profile(account, identity, nn_hash)
    db.session.flush()  # the account's id, and the unique checks of a racing first login
    db.session.add(
        FederatedIdentity(
            account_id=account.id,
            method=identity.method,
            issuer=identity.issuer,
            subject=subject,
            created_at=now,
            last_login_at=now,
        )
    )
    db.session.flush()
    audit.record(
        event, account_id=account.id, method=identity.method, commit=False, issuer=identity.issuer, via=via
    )
    db.session.commit()
    return account


def _find_or_create(identity: Identity, nn_hash: str | None, register: bool) -> tuple[Account, str, str]:
    """(account, audit event, rule) for an identity without a link yet (rules 2 to 4)."""
    if nn_hash is not None:
        account = db.session.scalar(select(Account).where(Account.national_number_hash == nn_hash))
        if account is not None:
            return account, "federation.relink", "national_number"
        customer = db.session.scalar(select(Customer).where(Customer.national_number_hash == nn_hash))
        if customer is not None:
            account = db.session.scalar(
                select(Account).where(Account.customer_id == customer.id).order_by(Account.id)
            )
            if account is None:
                return _account_from_customer(customer, nn_hash), "federation.create", "customer"
            if account.national_number_hash not in (None, nn_hash):
                log.warning("customer %s: its account holds another national number; not linked", customer.id)
                raise FederationError("no_account", "the customer's account belongs to another person")
            return account, "federation.link", "customer"
    if not register:
        raise FederationError("no_account", "unknown person and registration through this method is off")
    return _new_account(nn_hash), "federation.create", "register"


def _check_usable(account: Account | None, nn_hash: str | None) -> None:
    if account is None:
        raise FederationError("no_account", "the link points to no account")
    if account.status != "active":
        raise FederationError("account_disabled", f"account status {account.status}")
    if nn_hash is not None and account.national_number_hash not in (None, nn_hash):
        # A link made for one person now proves another: never log them in.
        raise FederationError("no_account", "the linked account holds another national number")


# ---------------------------------------------------------------------------
# Accounts made from an identity
# ---------------------------------------------------------------------------


def _new_account(nn_hash: str | None, **fields: Any) -> Account:
    account = Account(
        sub=secrets.token_hex(16),
        national_number_hash=nn_hash,
        status="active",
        email_verified=False,
        phone_verified=False,
        **fields,
    )
    db.session.add(account)
    return account


def _account_from_customer(customer: Customer, nn_hash: str) -> Account:
    # Names and birth date come from the identity (just proved); the company's
    # contacts may be stale, so they start unverified.
    return _new_account(
        nn_hash,
        customer_id=customer.id,
        email=_email(customer.email),
        phone=_phone(customer.phone),
    )


def _complete_profile(account: Account, identity: Identity, nn_hash: str | None) -> None:
    """Fill what the account lacks from the identity; never replace what it has."""
    claims: Mapping[str, Any] = identity.claims or {}
    if nn_hash is not None and account.national_number_hash is None:
        holder = db.session.scalar(select(Account.id).where(Account.national_number_hash == nn_hash))
        if holder is None or holder == account.id:
            account.national_number_hash = nn_hash
        else:
            log.warning(
                "account %s: national number already held by account %s; not copied", account.id, holder
            )
    for name in ("given_name", "family_name"):
        value = claims.get(name)
        if not getattr(account, name) and isinstance(value, str) and value.strip():
            setattr(account, name, value.strip()[:200])
    birthdate = claims.get("birthdate")
    if not account.birthdate and isinstance(birthdate, str) and _BIRTHDATE.match(birthdate):
        account.birthdate = birthdate
    address = claims.get("address")
    if not account.address and isinstance(address, Mapping):
        fields = {k: v for k, v in address.items() if k in _ADDRESS_FIELDS and isinstance(v, str) and v}
        if fields:
            account.address = fields

    email = _email(claims.get("email"))
    if email is not None:
        verified = claims.get("email_verified") is True
        if not account.email:
            account.email, account.email_verified = email, verified
        elif account.email.casefold() == email.casefold() and verified:
            account.email_verified = True
    phone = _phone(claims.get("phone_number"))
    if phone is not None:
        verified = claims.get("phone_number_verified") is True
        if not account.phone:
            account.phone, account.phone_verified = phone, verified
        elif account.phone == phone and verified:
            account.phone_verified = True


def _email(value: Any) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return None

    try:
        return validate_email(value.strip(), check_deliverability=False).normalized
    except EmailNotValidError:
        return None


def _phone(value: Any) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return None

    try:
        # Any country: itsme is also used with Dutch phones; the SMS policy decides where it sends.
        return normalize_phone(value, allowed_prefixes=())
    except PhoneError:
        return None
