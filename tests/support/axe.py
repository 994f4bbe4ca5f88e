"""WCAG 2.1 A/AA checks with axe-core in Chromium, and the "no horizontal scroll" bar.

axe-core comes from npm into ``tests/.axe`` (git-ignored; ``.ci/run`` installs it:
``npm install --prefix tests/.axe axe-core@4``). Without it the checks skip with the reason
on a developer's laptop and fail under CI=true. The pages' CSP allows no inline script,
so the checking context bypasses CSP to inject axe (``bypass_csp``); other browser tests
keep checking the CSP.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

AXE = Path(__file__).resolve().parent.parent / ".axe" / "node_modules" / "axe-core" / "axe.min.js"
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
VIEWPORTS = {"phone": {"width": 390, "height": 844}, "desktop": {"width": 1280, "height": 800}}


def require_axe() -> Path:
    if not AXE.exists():
        reason = f"axe-core not installed: npm install --prefix {AXE.parents[2]} axe-core@4"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true but {reason}", pytrace=False)
        pytest.skip(reason)
    return AXE


def problems(page) -> list[str]:
    """What is wrong with the page as shown now: horizontal scroll, WCAG 2.1 A/AA violations."""
    found = []
    width = page.evaluate("() => document.scrollingElement.scrollWidth")
    viewport = page.viewport_size["width"]
    if width > viewport:
        found.append(f"{page.url}: scrolls sideways ({width} px > {viewport} px)")
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.add_script_tag(path=str(AXE))
    violations = page.evaluate(
        """async (tags) => (await axe.run(document, {runOnly: {type: 'tag', values: tags}})).violations
             .map(v => v.id + ': ' + v.help + ' — '
                  + v.nodes.map(n => n.target.join(' ')).slice(0, 3).join(', '))""",
        WCAG_TAGS,
    )
    found += [f"{page.url}: {v}" for v in violations]
    return found
