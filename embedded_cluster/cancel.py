"""Giving up on long server calls (BulkDump, BulkLoad) when their caller has.

gRPC tells a handler that its call is over (the client's deadline passed, the client cancelled, the
server is stopping) through a callback; :class:`Cancellation` turns that into an event the handler
checks between steps and sleeps on during injected stalls. Work running in a worker process cannot
see the event, so the handler mirrors it into a flag file that the worker checks between chunks of
work (:func:`check_flag`), and then waits for the worker to stop, so that nothing the call started is
still writing when the caller retries.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import TypeVar

import grpc

from fdbcore import errors

R = TypeVar("R")

_POLL_SECONDS = 0.05


def _gave_up(what: str) -> errors.FDBError:
    return errors.TimedOut(f"{what}: the caller's deadline passed or the caller went away")


class Cancellation:
    """Set once the call it belongs to is over; never unset."""

    def __init__(self) -> None:
        self._event = threading.Event()

    @classmethod
    def of_call(cls, context: grpc.ServicerContext) -> Cancellation:
        cancellation = cls()
        if not context.add_callback(cancellation.cancel):  # the call is already over
            cancellation.cancel()
        return cancellation

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self, what: str) -> None:
        """``timed_out`` if the call is over."""
        if self._event.is_set():
            raise _gave_up(what)

    def sleep(self, seconds: float, what: str) -> None:
        """Sleep ``seconds`` (0: until cancelled); ``timed_out`` as soon as the call is over."""
        if self._event.wait(seconds or None):
            raise _gave_up(what)

    def wait_for(self, future: Future[R], flag: Path | None, what: str) -> R:
        """The result of ``future`` (see :meth:`wait_done`)."""
        self.wait_done(future, flag, what)
        return future.result()

    def wait_done(self, future: Future[R], flag: Path | None, what: str) -> None:
        """Wait until ``future`` is done. When the call ends first, raise ``flag`` (which the worker
        process running the work checks), wait for the work to stop, and raise ``timed_out``."""
        while True:
            try:
                future.exception(timeout=_POLL_SECONDS)
                return
            except FutureTimeout:
                pass
            if self._event.is_set():
                if flag is not None:
                    flag.touch()
                    future.exception()
                raise _gave_up(what)


def check_flag(flag: str, what: str) -> None:
    """For worker processes: ``timed_out`` once the server raised ``flag`` (see :meth:`Cancellation.wait_for`)."""
    if os.path.exists(flag):
        raise _gave_up(what)
