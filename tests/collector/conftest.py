"""Fixtures for tests that need the real collector (otelcol-obsctl)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.otelcol import otelcol_binary


@pytest.fixture(scope="session")
def otelcol() -> Path:
    """The otelcol-obsctl binary: $OBSCTL_OTELCOL or scripts/build-collector.sh (builds when missing).

    Skips when Go is missing locally; fails under CI=true.
    """
    return otelcol_binary()
