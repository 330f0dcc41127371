"""Reliability tests: the ``--long`` option and the hypothesis profiles.

``pytest tests/reliability --long`` (or ``MICRONET_LONG=1 pytest ...`` from anywhere, which also works when
this folder's conftest is not loaded at start-up, e.g. a bare ``pytest`` from the repository root) runs the
property tests with the ``long`` hypothesis profile: thousands of random architectures instead of a few dozen.
"""

from __future__ import annotations

import os

import _reliability_profiles as profiles


def pytest_addoption(parser):
    parser.addoption(
        "--long",
        action="store_true",
        default=False,
        help="reliability property tests: use the 'long' hypothesis profile (thousands of random "
        f"architectures); same as {profiles.LONG_ENV}=1",
    )


def pytest_configure(config):
    # (the option exists only when this conftest is loaded at start-up: hence the default)
    if config.getoption("--long", default=False):
        os.environ[profiles.LONG_ENV] = "1"
    profiles.activate()


def pytest_report_header(config):
    return f"reliability: hypothesis profile {profiles.profile_name()!r}"
