"""The one rule for usernames: how they compare, which are refused, which look alike.

* **Comparison** (:func:`normalize_username`): the PRECIS ``UsernameCaseMapped``
  profile (RFC 8265 section 3.3, through ``precis-i18n``): width mapping
  (``ＡＬＩＣＥ`` is ``alice``), lower case, NFC. Registration, renaming, login,
  the forgotten password and the account import all compare this form
  (``accounts.username_norm``). A name the profile refuses (only old accounts
  can have one) falls back to NFKC + case folding, so its owner can still
  log in; no new name can be such a name.
* **Refused** (:func:`username_problem`): shorter than 3 or longer than 64
  characters, white space, control characters, bidirectional overrides and
  invisible (zero-width, soft hyphen, other format) characters, and whatever
  else the profile disallows (symbols, emoji, compatibility characters), each
  with its own reason code the pages turn into a clear message.
* **Look-alikes** (:func:`skeleton`): the Unicode TR 39 skeleton idea, on the
  name as shown — decompose, replace each character by the representative of
  its class of confusable characters, decompose again. Two names with the same skeleton
  (``paypal`` and ``pаypal`` with a Cyrillic ``а``; ``l``, ``1`` and ``|``) are
  one too many: a new name whose skeleton is already an account's is refused.
  The classes come from the ``confusable-homoglyphs`` package's copy of the
  Unicode ``confusables.txt`` (single-character entries, closed transitively),
  because no maintained Python package ships the skeleton function itself
  without ICU.
"""

from __future__ import annotations

import functools
import json
import unicodedata
from importlib import resources

from precis_i18n import get_profile

MIN_LENGTH, MAX_LENGTH = 3, 64

# Bidirectional controls (embeddings, overrides, isolates, marks): they reorder what is shown.
_BIDI = set("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


@functools.cache
def _profile():
    return get_profile("UsernameCaseMapped")


def _fallback(username: str) -> str:
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", username).casefold())


def normalize_username(username: str) -> str:
    """The form two usernames are compared in (stored as ``username_norm``)."""
    username = (username or "").strip()
    if not username:
        return ""
    try:
        return _profile().enforce(username)
    except UnicodeError:
        return _fallback(username)


def username_problem(username: str) -> str | None:
    """Why ``username`` cannot be chosen, as a code; None when it can.

    Codes: ``length``, ``spaces``, ``invisible`` (control, bidi or format
    characters), ``characters`` (anything else the PRECIS profile refuses).
    """
    username = (username or "").strip()
    if not (MIN_LENGTH <= len(username) <= MAX_LENGTH):
        return "length"
    if any(c.isspace() for c in username):
        return "spaces"
    if any(c in _BIDI or unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co", "Cn") for c in username):
        return "invisible"
    try:
        _profile().enforce(username)
    except UnicodeError:
        return "characters"
    return None


@functools.cache
def _classes() -> dict[str, str]:
    """Each confusable character → the representative of its class (ASCII when the class has one)."""
    raw = resources.files("confusable_homoglyphs").joinpath("confusables.json").read_text("utf-8")
    data = json.loads(raw)
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        root = x
        while parent.setdefault(root, root) != root:
            root = parent[root]
        while parent[x] != root:
            parent[x], x = root, parent[x]
        return root

    for char, entries in data.items():
        for entry in entries:
            other = entry["c"].replace("\u200e", "")  # the data wraps RTL characters in LRMs
            if len(char) == 1 and len(other) == 1:
                parent[find(char)] = find(other)
    members: dict[str, list[str]] = {}
    for char in parent:
        members.setdefault(find(char), []).append(char)
    out = {}
    for group in members.values():
        representative = min(group, key=lambda c: (not c.isascii(), c))
        for char in group:
            out[char] = representative
    return out


def skeleton(username: str) -> str:
    """The TR 39-style skeleton of a username as it is shown: equal skeletons look alike.

    Computed on the name as typed (width-mapped, case kept), because that is what people
    see: ``biII`` looks like ``bill``; names equal but for case are already one name.
    """
    classes = _classes()
    text = unicodedata.normalize("NFD", unicodedata.normalize("NFKC", (username or "").strip()))
    mapped = "".join(classes.get(c, c) for c in text)
    return unicodedata.normalize("NFD", mapped)
