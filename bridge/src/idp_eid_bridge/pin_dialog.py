"""A small tkinter PIN dialog, run as its own process by the bridge's ``tk`` prompt.

``python -m idp_eid_bridge.pin_dialog "<message>"`` (in a one-file build:
``idp-eid-bridge --pin-dialog "<message>"``) prints the PIN on stdout and
exits 0, or exits 1 when the card holder cancels. Running it as a child
process keeps Tk in a main thread (macOS requires it) and works like an
askpass program (SSH_ASKPASS, pinentry).
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    import tkinter
    from tkinter import simpledialog

    args = sys.argv[1:] if argv is None else argv
    message = args[0] if args else "Enter your eID PIN"
    root = tkinter.Tk()
    root.withdraw()
    root.attributes("-topmost", True)
    pin = simpledialog.askstring("Belgian eID", message, show="•", parent=root)
    root.destroy()
    if not pin:
        return 1
    sys.stdout.write(pin + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
