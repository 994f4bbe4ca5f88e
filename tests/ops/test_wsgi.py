"""The WSGI entry point never runs the embedded development defaults."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("module", ["idp.wsgi", "wsgi"])
def test_wsgi_refuses_to_start_without_a_configuration_file(tmp_path, module):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", f"import {module}"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "IDP_CONFIG is not set" in result.stderr
    assert not (tmp_path / "instance").exists()
