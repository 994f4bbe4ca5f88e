"""Build the one-file eID bridge for this system with PyInstaller (Linux, Windows, macOS).

    python bridge/build.py [--out DIR] [--work DIR]

Makes a fresh virtual environment under ``--work`` (default ``bridge/build``),
installs the bridge distribution from this folder and PyInstaller from PyPI
into it, and runs PyInstaller ``--onefile``. The executable lands in
``--out`` (default ``bridge/dist``) as ``idp-eid-bridge-<system>-<machine>``
(``.exe`` on Windows); its path is the last line printed. Run it on each
system you ship for, with the Python (3.11+) you want inside: PyInstaller
does not cross-compile. Only the standard library is needed to run this file.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import venv
from pathlib import Path

HERE = Path(__file__).resolve().parent
PYINSTALLER = "pyinstaller>=6.10,<7"


def system_name() -> str:
    return {"Windows": "windows", "Darwin": "macos"}.get(platform.system(), "linux")


def run(*args: str | os.PathLike) -> None:
    print("+", " ".join(map(str, args)), flush=True)
    subprocess.run([str(a) for a in args], check=True)  # noqa: S603 - our own build steps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "dist")
    parser.add_argument("--work", type=Path, default=HERE / "build")
    args = parser.parse_args(argv)

    env_dir = args.work / "venv"
    if env_dir.exists():
        shutil.rmtree(env_dir)
    venv.EnvBuilder(with_pip=True, clear=True).create(env_dir)
    python = env_dir / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    run(python, "-m", "pip", "install", "-q", "--upgrade", "pip")
    run(python, "-m", "pip", "install", "-q", str(HERE), PYINSTALLER)

    name = f"idp-eid-bridge-{system_name()}-{platform.machine().lower()}"
    run(
        python,
        "-m",
        "PyInstaller",
        "--onefile",
        "--noconfirm",
        "--clean",
        "--name",
        name,
        "--distpath",
        args.out,
        "--workpath",
        args.work / "pyinstaller",
        "--specpath",
        args.work,
        # The PKCS#11 wrapper's compiled part is loaded by name: name it.
        "--collect-all",
        "PyKCS11",
        HERE / "src" / "idp_eid_bridge" / "__main__.py",
    )
    binary = args.out / (name + (".exe" if os.name == "nt" else ""))
    if not binary.exists():
        print(f"build.py: {binary} was not made", file=sys.stderr)
        return 1
    print(binary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
