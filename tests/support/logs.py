"""Logging set up by a test and put back afterwards."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from bot.logs import QUIET_LOGGERS, SILENT_LOGGERS


@contextmanager
def restored_logging() -> Iterator[None]:
    """Whatever a test does to logging (configure_logging, levels, handlers) is undone."""
    root = logging.getLogger()
    named = [logging.getLogger(name) for name in (*QUIET_LOGGERS, *SILENT_LOGGERS)]
    saved = (root.level, list(root.handlers), [(lg.level, lg.disabled) for lg in named])
    try:
        yield
    finally:
        root.setLevel(saved[0])
        for handler in list(root.handlers):
            if handler not in saved[1]:
                root.removeHandler(handler)
        for logger, (level, disabled) in zip(named, saved[2], strict=True):
            logger.setLevel(level)
            logger.disabled = disabled
