"""The fault tests' own embedded stack (ports PORT_BASE+600...), shared by the package's tests: they
stop, pause and kill its parts, which must never disturb the session stack other tests use."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import PORT_BASE
from tests.faults.harness import FaultStack, fault_stack


@pytest.fixture(scope="package")
def _fault_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultStack]:
    with fault_stack(PORT_BASE + 600, tmp_path_factory.mktemp("faults")) as faults:
        yield faults


@pytest.fixture
def faults(_fault_stack: FaultStack) -> FaultStack:
    """The fault stack with a gateway and a worker running."""
    _fault_stack.ensure_pipeline()
    return _fault_stack
