"""What several test files share: the people who drive each channel, the steps of an intake,
the worker processes, the browser. Test files import from here, never from each other."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run(scenario: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run one async scenario to its end on a fresh event loop."""
    return asyncio.run(scenario())
