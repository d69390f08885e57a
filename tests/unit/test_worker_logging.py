"""The worker's log level holds after Faust set up logging (its spinner would lower it to DEBUG)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import faust
import pytest

from smsfold.runtime import QuietWorker


@pytest.fixture
def root_logger() -> Iterator[logging.Logger]:
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    yield root
    root.setLevel(level)
    root.handlers[:] = handlers


@pytest.mark.parametrize("worker_class", [faust.Worker, QuietWorker])
def test_debug_lines_stay_off_at_warning(
    root_logger: logging.Logger, worker_class: type[faust.Worker]
) -> None:
    app = faust.App("unit-logging", broker="kafka://127.0.0.1:1", web_enabled=False)
    worker = worker_class(app, loglevel="WARNING", quiet=True)
    worker.spinner = faust.utils.terminal.Spinner()  # as on a terminal
    worker._setup_logging()
    # Faust's own worker is the counterexample: its spinner turns debug on for every logger.
    debug = logging.getLogger("aiokafka.producer").isEnabledFor(logging.DEBUG)
    assert debug == (worker_class is faust.Worker)
