"""Structured (JSON lines) logs for the gateway, with every phone-number-like run of digits masked as a
last line of defence: handlers mask numbers themselves, this catches what slips through."""

from __future__ import annotations

import json
import logging
import time

from gateway.masking import redact_phones

__all__ = ["JsonFormatter", "configure_logging"]


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg (masked), and exc (masked) when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": redact_phones(record.getMessage()),
        }
        if record.exc_info:
            entry["exc"] = redact_phones(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(level: str) -> None:
    """Called by the gateway's entry point only (nothing configures logging at import)."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
