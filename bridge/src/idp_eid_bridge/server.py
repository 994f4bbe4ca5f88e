"""The eID bridge: a local HTTP service that lets the login page use the card.

Runs on the card holder's computer, bound to ``127.0.0.1`` only, and answers
only origins in its allowlist (CORS with ``Vary: Origin``; preflights get
``Access-Control-Allow-Private-Network: true`` when asked, per the WICG
Private Network Access draft). ``GET /status`` says whether the middleware,
a reader and a card are there; ``POST /authenticate`` with ``{"challenge"}``
asks for the PIN in the bridge's own prompt (never in the web page), signs
``hash(origin) ‖ hash(challenge)`` with the card's Authentication key and
returns the token the provider's verifier (``connectors.eid.EidVerifier``) checks. The origin
signed is the browser's ``Origin`` header, which a page cannot choose.

Settings, strongest first: command-line flags, environment variables
(``EID_BRIDGE_PORT``, ``EID_BRIDGE_ALLOWED_ORIGINS`` comma-separated,
``EID_BRIDGE_PIN_PROMPT``, ``PYKCS11LIB``), a TOML file (``--config`` or the
per-user default), built-in defaults. See ``docs/bridge.md``.
"""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import os
import platform
import re
import shlex
import subprocess
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from idp_eid_bridge import VERSION
from idp_eid_bridge.card import BridgeError, CardReader, PinPrompt, PinRequest, default_module
from idp_eid_bridge.origins import origin_problem

__version__ = VERSION
log = logging.getLogger(__name__)

DEFAULT_PORT = 35963
MAX_BODY = 4096
PROMPT_TIMEOUT = 120
PIN_DIALOG_FLAG = "--pin-dialog"
_CHALLENGE = re.compile(r"[A-Za-z0-9+/=_-]{32,256}")


# -- PIN prompts ----------------------------------------------------------------


def _prompt_text(request: PinRequest) -> str:
    text = f"Enter your eID PIN to log in at {request.origin}"
    if request.tries_left == 1:
        text += " (last try before the PIN is blocked)"
    elif request.tries_left:
        text += f" ({request.tries_left} tries left)"
    return text


def console_prompt(request: PinRequest) -> str | None:
    try:
        return getpass.getpass(_prompt_text(request) + ": ") or None
    except (EOFError, KeyboardInterrupt):
        return None


def command_prompt(argv: list[str]) -> PinPrompt:
    """An askpass-style program: gets the message as its last argument, prints the PIN, exit 0."""

    def ask(request: PinRequest) -> str | None:
        env = {**os.environ, "EID_BRIDGE_ORIGIN": request.origin}
        if request.tries_left is not None:
            env["EID_BRIDGE_TRIES_LEFT"] = str(request.tries_left)
        try:
            done = subprocess.run(  # noqa: S603 - the program is the card holder's own setting
                [*argv, _prompt_text(request)],
                capture_output=True,
                text=True,
                timeout=PROMPT_TIMEOUT,
                env=env,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            log.warning("eid bridge: PIN prompt failed (%s)", type(exc).__name__)
            return None
        pin = done.stdout.splitlines()[0].strip() if done.stdout else ""
        return pin if done.returncode == 0 and pin else None

    return ask


def make_prompt(spec: str) -> PinPrompt:
    if spec == "console":
        return console_prompt
    if spec == "tk":
        # A one-file build is its own interpreter: it runs the dialog through a hidden flag.
        if getattr(sys, "frozen", False):
            return command_prompt([sys.executable, PIN_DIALOG_FLAG])
        return command_prompt([sys.executable, "-m", "idp_eid_bridge.pin_dialog"])
    if spec.startswith("command:") and spec[8:].strip():
        return command_prompt(shlex.split(spec[8:]))
    raise ValueError("pin prompt must be tk, console or command:<program>")


# -- configuration --------------------------------------------------------------


@dataclass(frozen=True)
class BridgeConfig:
    port: int
    allowed_origins: tuple[str, ...]
    pin_prompt: str
    module: str


def default_config_path() -> Path:
    system = platform.system()
    if system == "Windows":
        return Path(os.environ.get("APPDATA", Path.home())) / "idp-eid-bridge" / "bridge.toml"
    if system == "Darwin":
        return Path.home() / "Library" / "Application Support" / "idp-eid-bridge" / "bridge.toml"
    return Path(os.environ.get("XDG_CONFIG_HOME", Path.home() / ".config")) / "idp-eid-bridge" / "bridge.toml"


def load_config(args: argparse.Namespace, environ: Mapping[str, str]) -> BridgeConfig:
    """Merge flags, environment, TOML file and defaults; SystemExit with every problem found."""
    path = Path(args.config) if args.config else default_config_path()
    file: dict[str, Any] = {}
    problems: list[str] = []
    if args.config or path.exists():
        try:
            file = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            problems.append(f"{path}: {exc}")
    for key in set(file) - {"port", "allowed_origins", "pin_prompt", "module"}:
        problems.append(f"{path}: {key}: unknown key")

    port: Any = (
        args.port
        if args.port is not None
        else environ.get("EID_BRIDGE_PORT") or file.get("port", DEFAULT_PORT)
    )
    try:
        port = int(port)
        if not 0 <= port <= 65535:
            raise ValueError
    except (TypeError, ValueError):
        problems.append(f"port: {port!r} is not a port number")
        port = DEFAULT_PORT
    if args.allowed_origin:
        origins = list(args.allowed_origin)
    elif environ.get("EID_BRIDGE_ALLOWED_ORIGINS"):
        origins = [o.strip() for o in environ["EID_BRIDGE_ALLOWED_ORIGINS"].split(",") if o.strip()]
    else:
        origins = file.get("allowed_origins", [])
    if not isinstance(origins, list) or not origins:
        problems.append("allowed_origins: name at least one origin (the login page's https origin)")
        origins = []
    for origin in origins:
        reason = origin_problem(origin) if isinstance(origin, str) else "must be a string"
        if reason:
            problems.append(f"allowed_origins: {origin!r} {reason}")
    pin_prompt = args.pin_prompt or environ.get("EID_BRIDGE_PIN_PROMPT") or file.get("pin_prompt", "tk")
    try:
        make_prompt(pin_prompt)
    except ValueError as exc:
        problems.append(f"pin_prompt: {exc}")
    module = args.module or environ.get("PYKCS11LIB") or file.get("module") or default_module()
    if problems:
        raise SystemExit("idp-eid-bridge: configuration errors:\n  " + "\n  ".join(problems))
    return BridgeConfig(port, tuple(origins), pin_prompt, str(module))


# -- HTTP -----------------------------------------------------------------------


class BridgeServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, config: BridgeConfig, reader: CardReader, prompt: PinPrompt) -> None:
        self.config = config
        self.reader = reader
        self.prompt = prompt
        super().__init__(("127.0.0.1", config.port), BridgeHandler)

    @property
    def port(self) -> int:
        return self.server_address[1]


class BridgeHandler(BaseHTTPRequestHandler):
    server: BridgeServer
    server_version = f"idp-eid-bridge/{VERSION}"
    sys_version = ""

    # -- plumbing --------------------------------------------------------------
    def _allowed_origin(self) -> str | None:
        origin = self.headers.get("Origin")
        return origin if origin in self.server.config.allowed_origins else None

    def _host_ok(self) -> bool:
        # A DNS-rebinding page reaches us under its own host name: answer loopback names only.
        host = (self.headers.get("Host") or "").rsplit(":", 1)[0]
        return host in ("127.0.0.1", "localhost")

    def _send(
        self, status: int, body: dict[str, Any] | None, origin: str | None, extra: dict | None = None
    ) -> None:
        data = json.dumps(body).encode() if body is not None else b""
        self.send_response(status)
        if origin:
            self.send_header("Access-Control-Allow-Origin", origin)
        self.send_header("Vary", "Origin")
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        if body is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, err: BridgeError, origin: str | None) -> None:
        self._send(err.status, err.body(), origin)

    def _gate(self) -> str | None:
        """The caller's origin when it may be answered; otherwise answer 403 and return None."""
        if not self._host_ok():
            self._error(BridgeError("bad_request", "unexpected Host header"), None)
            return None
        origin = self._allowed_origin()
        if origin is None:
            self._error(BridgeError("origin_not_allowed", "this web site may not use the eID bridge"), None)
        return origin

    # -- methods ---------------------------------------------------------------
    def do_OPTIONS(self) -> None:  # noqa: N802 - http.server naming
        origin = self._gate()
        if origin is None:
            return
        headers = {
            "Access-Control-Allow-Methods": "GET, POST",
            "Access-Control-Allow-Headers": "Content-Type",
            "Access-Control-Max-Age": "600",
        }
        if self.headers.get("Access-Control-Request-Private-Network", "").lower() == "true":
            headers["Access-Control-Allow-Private-Network"] = "true"
        self._send(204, None, origin, headers)

    def do_GET(self) -> None:  # noqa: N802
        origin = self._gate()
        if origin is None:
            return
        if self.path != "/status":
            self._error(BridgeError("not_found", "no such endpoint"), origin)
            return
        self._send(200, {"version": VERSION, **self.server.reader.status()}, origin)

    def do_POST(self) -> None:  # noqa: N802
        origin = self._gate()
        if origin is None:
            return
        if self.path != "/authenticate":
            self._error(BridgeError("not_found", "no such endpoint"), origin)
            return
        try:
            challenge = self._read_challenge()
            result = self.server.reader.authenticate(origin, challenge, self.server.prompt)
        except BridgeError as err:
            log.info("eid bridge: authenticate origin=%s outcome=%s", origin, err.code)
            self._error(err, origin)
            return
        log.info("eid bridge: authenticate origin=%s outcome=ok", origin)
        self._send(200, result, origin)

    def _read_challenge(self) -> str:
        if (self.headers.get("Content-Type") or "").split(";")[0].strip() != "application/json":
            raise BridgeError("bad_request", "send application/json")
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = -1
        if not 0 < length <= MAX_BODY:
            raise BridgeError("bad_request", "missing or oversized body")
        try:
            body = json.loads(self.rfile.read(length))
        except (ValueError, UnicodeDecodeError) as exc:
            raise BridgeError("bad_request", "body is not JSON") from exc
        challenge = body.get("challenge") if isinstance(body, dict) else None
        if not isinstance(challenge, str) or not _CHALLENGE.fullmatch(challenge):
            raise BridgeError("bad_request", "challenge must be the provider's base64 challenge")
        return challenge

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server naming
        log.debug("eid bridge: " + format, *args)


# -- entry point ----------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="idp-eid-bridge", description="Belgian eID bridge for web login.")
    parser.add_argument("--port", type=int, help=f"TCP port on 127.0.0.1 (default {DEFAULT_PORT}; 0 = any)")
    parser.add_argument("--allowed-origin", action="append", help="origin allowed to call (repeatable)")
    parser.add_argument("--pin-prompt", help="tk (default), console or command:<program>")
    parser.add_argument("--module", help="PKCS#11 module (default: PYKCS11LIB or the eID middleware)")
    parser.add_argument("--config", help=f"TOML settings file (default {default_config_path()})")
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--version", action="version", version=f"idp-eid-bridge {VERSION}")
    return parser.parse_args(argv)


def build_server(config: BridgeConfig) -> BridgeServer:
    return BridgeServer(config, CardReader(config.module), make_prompt(config.pin_prompt))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == [PIN_DIALOG_FLAG]:
        from idp_eid_bridge import pin_dialog

        return pin_dialog.main(argv[1:])
    args = parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s")
    config = load_config(args, os.environ)
    try:
        server = build_server(config)
    except OSError as exc:
        raise SystemExit(f"idp-eid-bridge: cannot listen on 127.0.0.1:{config.port}: {exc.strerror}") from exc
    print(f"idp-eid-bridge {VERSION} listening on http://127.0.0.1:{server.port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
