"""Fixtures for the safeflow.data tests."""

from __future__ import annotations

import pandas as pd
import pytest

from tests.unit.data.sfdata_helpers import make_frame, write_sources


@pytest.fixture(scope="session")
def frame() -> pd.DataFrame:
    return make_frame()


@pytest.fixture(scope="session")
def sources(frame: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """The same rows as every supported source type."""
    return write_sources(frame, tmp_path_factory.mktemp("sources"))
