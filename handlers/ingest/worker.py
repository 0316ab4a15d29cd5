"""A separate process for opening patients' files, with a time and a memory limit.

Archives, DICOM and previews are parsed by libraries that can be driven into deep recursion,
huge allocations or long loops by a hostile or broken file. Running them in a child process
keeps the bot serving everyone else: the child's address space is capped (RLIMIT_AS), a call
that runs too long is killed, and a child that dies is replaced on the next call.
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
import time
import warnings
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any, TypeVar

from storage.files import out_of_space

log = logging.getLogger(__name__)

Request = TypeVar("Request")
Result = TypeVar("Result")
Progress = Callable[[int, int], None]


class WorkerFailed(Exception):
    """The work could not be done: `reason` is "timeout", "memory", "crashed", "no_space" (the
    disk is full) or an error name."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _limit_memory(memory_mb: int) -> None:
    try:
        import resource

        limit = memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    except (ImportError, ValueError, OSError):  # not on this platform: the timeout still holds
        pass


def _quiet() -> None:
    """Libraries warn with values from the file (a name, a path): none of it may reach a log."""
    warnings.simplefilter("ignore")
    for name in ("pydicom", "PIL"):
        logger = logging.getLogger(name)
        logger.propagate = False
        logger.addHandler(logging.NullHandler())


def _serve(conn: Connection, memory_mb: int) -> None:
    """The child's loop: one call at a time, progress and result sent back over the pipe."""
    _limit_memory(memory_mb)
    _quiet()

    def progress(done: int, total: int) -> None:
        conn.send(("progress", done, total))

    while True:
        try:
            function, request = conn.recv()
        except (EOFError, KeyboardInterrupt):
            return
        try:
            conn.send(("ok", function(request, progress)))
        except MemoryError:
            conn.send(("error", "memory"))
        except RecursionError:
            conn.send(("error", "recursion"))
        except Exception as error:  # reported by name only: never a file's content
            conn.send(("error", "no_space" if out_of_space(error) else type(error).__name__))


class Worker:
    """One child process, reused across calls; calls are serialised."""

    def __init__(self, memory_mb: int, timeout_seconds: float) -> None:
        self.memory_mb = memory_mb
        self.timeout_seconds = timeout_seconds
        self._lock = threading.Lock()
        self._process: BaseProcess | None = None
        self._conn: Connection | None = None

    def call(
        self,
        function: Callable[[Request, Progress], Result],
        request: Request,
        on_progress: Progress | None = None,
    ) -> Result:
        with self._lock:
            conn = self._ensure_started()
            deadline = time.monotonic() + self.timeout_seconds
            try:
                conn.send((function, request))
                while True:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0 or not conn.poll(remaining):
                        log.warning("file analysis ran out of time; the worker is restarted")
                        self._stop()
                        raise WorkerFailed("timeout")
                    message: tuple[Any, ...] = conn.recv()
                    if message[0] == "progress":
                        if on_progress is not None:
                            on_progress(message[1], message[2])
                        continue
                    if message[0] == "ok":
                        return message[1]  # type: ignore[no-any-return]
                    raise WorkerFailed(message[1])
            except (EOFError, BrokenPipeError, ConnectionResetError, OSError):
                # The child died (killed for memory, a crash in a C extension).
                log.warning("the file analysis worker stopped; it is restarted")
                self._stop()
                raise WorkerFailed("crashed") from None

    def _ensure_started(self) -> Connection:
        if self._process is not None and self._process.is_alive() and self._conn is not None:
            return self._conn
        self._stop()
        # spawn, not fork: the parent runs threads and an event loop that a fork would copy.
        context = multiprocessing.get_context("spawn")
        parent, child = context.Pipe()
        process = context.Process(
            target=_serve, args=(child, self.memory_mb), daemon=True, name="huizhen-files"
        )
        process.start()
        child.close()
        self._process, self._conn = process, parent
        return parent

    def _stop(self) -> None:
        if self._conn is not None:
            self._conn.close()
        if self._process is not None:
            self._process.kill()
            self._process.join(timeout=5)
        self._process, self._conn = None, None

    def close(self) -> None:
        with self._lock:
            self._stop()
