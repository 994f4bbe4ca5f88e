"""A clock the tests set by hand: time moves when a test says so, never by sleeping."""

from __future__ import annotations

import pytest

T0 = 1_900_000_000.0


class Clock:
    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def app_clock(app, t: float = T0) -> Clock:
    """Give ``app`` a stopped clock (``idp.clock``) at ``t``; the test moves ``.t``."""
    clock = Clock(t)
    app.extensions["idp.clock"] = clock
    return clock


@pytest.fixture(name="clock")
def clock_fixture(app) -> Clock:
    """``clock``: the app's clock, stopped at :data:`T0`. Import ``clock_fixture`` into a test module
    (the fixture's name differs from the function's, so that tests taking ``clock`` shadow no import)."""
    return app_clock(app)
