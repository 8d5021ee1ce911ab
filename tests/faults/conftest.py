"""Fault suite: ``--long`` (or RELIABILITY_LONG=1) switches to the long parameters."""

from __future__ import annotations

from typing import Any

import pytest

from tests.faults.support import Profile, add_long_option, print_summary, profile_of


def pytest_addoption(parser: pytest.Parser) -> None:
    add_long_option(parser)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    print_summary(config, terminalreporter)


@pytest.fixture(scope="session")
def profile(pytestconfig: pytest.Config) -> Profile:
    """The short (CI) or long parameters of this run."""
    return profile_of(pytestconfig)
