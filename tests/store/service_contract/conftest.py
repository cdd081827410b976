"""Fixtures of the service-level contract suite: ``combo``, one fresh store per combination
(``combinations.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from service_contract.combinations import Combination, combination_names, open_combination


@pytest.fixture(params=combination_names())
def combo(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Combination]:
    with open_combination(str(request.param), tmp_path / "a") as opened:
        yield opened
