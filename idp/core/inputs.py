"""The one layer that decodes what a request carries before any view reads it.

Views and libraries (Authlib, Flask-WTF, SQLAlchemy) trust the text they get:
Authlib refuses to build an error that echoes a quote or a non-ASCII
character, PostgreSQL refuses a NUL byte in a text column, ``json`` recurses
once per nesting level. Rather than patch each field, :func:`check_request`
runs before every view and refuses, with :class:`BadInput` (a 400 that
:mod:`idp.core.errors` answers as the protocol's JSON error on the API
endpoints and as a page elsewhere), a request whose

* path, query string or URL-encoded form body is not valid UTF-8 once
  percent-decoded (Werkzeug would silently keep such bytes as ``%FF`` text);
* parameters hold a control character (C0 except tab, CR and LF; DEL; C1),
  or a value longer than :data:`MAX_VALUE` characters;
* body is ``multipart/form-data`` (no endpoint takes files);
* ``Authorization`` header is not printable ASCII, or is ``Basic`` with
  credentials that are not base64 of UTF-8 ``id:secret`` (RFC 7617 section 2;
  RFC 6749 section 2.3.1) — answered ``invalid_client`` (RFC 6749 section 5.2).

JSON that a request carries (the ``claims`` parameter, small JSON bodies) is
read with :func:`loads_json`, which bounds size and nesting depth before the
standard parser runs, and :func:`json_object`, which also insists on an object.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any
from urllib.parse import unquote_to_bytes

from flask import Flask, request
from werkzeug.exceptions import BadRequest

MAX_VALUE = 16 * 1024
MAX_JSON_DEPTH = 16
MAX_JSON_SIZE = 64 * 1024

# C0 controls except TAB, LF, CR; DEL; C1 controls.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_PRINTABLE_ASCII = re.compile(r"[\x20-\x7e]*\Z")


class BadInput(BadRequest):
    """A request refused before any view ran; ``error`` is its OAuth error code."""

    def __init__(
        self,
        description: str,
        error: str = "invalid_request",
        status: int = 400,
        challenge: str | None = None,
    ) -> None:
        super().__init__(description)
        self.error = error
        self.code = status
        self.challenge = challenge  # the WWW-Authenticate value of a 401


def has_control(text: str) -> bool:
    return _CONTROL.search(text) is not None


def _decode_pairs(raw: bytes, where: str) -> list[tuple[str, str]]:
    pairs = []
    for part in raw.split(b"&"):
        if not part:
            continue
        key, _, value = part.partition(b"=")
        try:
            pairs.append((_unquote(key), _unquote(value)))
        except UnicodeDecodeError:
            raise BadInput(f"the {where} is not valid UTF-8") from None
    return pairs


def _unquote(raw: bytes) -> str:
    return unquote_to_bytes(raw.replace(b"+", b" ")).decode("utf-8")


def _check_pairs(pairs: list[tuple[str, str]], where: str) -> None:
    for key, value in pairs:
        if has_control(key) or has_control(value):
            raise BadInput(f"a {where} parameter holds a control character")
        if len(key) > 128 or len(value) > MAX_VALUE:
            raise BadInput(f"a {where} parameter is too long")


def _check_authorization(header: str | None) -> None:
    if header is None:
        return
    scheme, _, credentials = header.partition(" ")
    if not _PRINTABLE_ASCII.match(header):
        if scheme.lower() == "bearer":  # RFC 6750 section 3.1
            raise BadInput(
                "the access token is not printable ASCII",
                "invalid_token",
                401,
                'Bearer error="invalid_token"',
            )
        raise BadInput("the Authorization header is not printable ASCII", "invalid_client", 401)
    if scheme.lower() != "basic":
        return
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        raise BadInput("the Basic credentials are not base64 of UTF-8", "invalid_client", 401) from None
    if ":" not in decoded or has_control(decoded):
        raise BadInput("the Basic credentials are not client_id:client_secret", "invalid_client", 401)


def check_request() -> None:
    """Refuse a request whose path, parameters or credentials cannot be decoded safely."""
    raw_path = request.environ.get("PATH_INFO", "")
    try:
        path = raw_path.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        raise BadInput("the path is not valid UTF-8") from None
    if has_control(path):
        raise BadInput("the path holds a control character")
    _check_pairs(_decode_pairs(request.query_string, "query string"), "query")
    mimetype = request.mimetype
    if mimetype == "multipart/form-data":
        raise BadInput("multipart bodies are not accepted")
    if mimetype == "application/x-www-form-urlencoded" and request.method in ("POST", "PUT", "PATCH"):
        body = request.get_data(cache=True)
        if len(body) > (request.max_content_length or len(body)):
            return  # Werkzeug answers 413 when the form is read
        _check_pairs(_decode_pairs(body, "form body"), "form")
    _check_authorization(request.headers.get("Authorization"))


def _depth(text: str) -> int:
    """Deepest nesting of arrays and objects, ignoring brackets inside strings."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def loads_json(text: str | bytes, max_depth: int = MAX_JSON_DEPTH, max_size: int = MAX_JSON_SIZE) -> Any:
    """``json.loads`` for untrusted input: size and depth bounded first; ValueError on any problem."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError("not valid UTF-8") from None
    if len(text) > max_size:
        raise ValueError("JSON too large")
    if _depth(text) > max_depth:
        raise ValueError("JSON nested too deeply")
    return json.loads(text)


def json_object(text: str | bytes | None, **limits: int) -> dict | None:
    """The JSON object in ``text``, or None when it is absent, malformed or not an object."""
    if not text:
        return None
    try:
        value = loads_json(text, **limits)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def request_json_object() -> dict | None:
    """The request body as a JSON object (JSON content type), or None."""
    if not request.is_json:
        return None
    return json_object(request.get_data(cache=True))


def init_app(app: Flask) -> None:
    app.before_request(check_request)
