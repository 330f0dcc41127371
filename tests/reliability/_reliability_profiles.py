"""Hypothesis budgets of the reliability tests.

Two profiles: ``reliability`` (the default, a few dozen examples per property so the folder runs in well
under three minutes on two slow cores) and ``long`` (thousands of examples for the main cross-checks), picked
by ``pytest tests/reliability --long`` or the environment variable ``MICRONET_LONG=1``.

Each property test asks :func:`examples` for its budget, so the default and long counts are visible next to
the test and a long run does not change the budget of other test folders.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

LONG_ENV = "MICRONET_LONG"
SUPPRESSED = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]

settings.register_profile("reliability", deadline=None, suppress_health_check=SUPPRESSED, print_blob=True)
settings.register_profile("long", deadline=None, suppress_health_check=SUPPRESSED, print_blob=True,
                          max_examples=2000)


def is_long() -> bool:
    return os.environ.get(LONG_ENV, "").strip() not in ("", "0", "false", "no")


def profile_name() -> str:
    return "long" if is_long() else "reliability"


def activate() -> None:
    """In a long run, load the ``long`` profile (the default run leaves hypothesis' global settings alone, so
    other test folders keep theirs); budgets come from :func:`examples` either way."""
    if is_long():
        settings.load_profile("long")


def examples(default: int, long: int = 2000) -> int:
    """The example budget of one property test: ``default`` normally, ``long`` with MICRONET_LONG=1."""
    return long if is_long() else default


def budget(default: int, long: int = 2000) -> settings:
    """``@budget(n)``: settings for a property test with ``n`` examples (``long`` in the long profile)."""
    return settings(max_examples=examples(default, long), deadline=None, suppress_health_check=SUPPRESSED,
                    print_blob=True)
