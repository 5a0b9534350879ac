"""Ctrl-C and SIGTERM stop a `flywheel run` within seconds, and leave it resumable.

The first SIGINT or SIGTERM raises `Stopped` in the main thread, where the flow runs its steps:
the step under way is abandoned (its atomic writes publish nothing, `dvc.lock` and the ledger
never record it), the workspace lock is released, the Prefect API hears that the run crashed,
and the temporary API server stops with the process. Should that take longer than
`GRACE_SECONDS` (a library waiting on a server that is gone), or should a second signal come,
the servers the run started are stopped and the process exits at once: the state it leaves is
the one a SIGKILL leaves, which the next run resumes from (the stale temporaries of the cut step
are removed when that step runs again).
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType

GRACE_SECONDS = 10.0
"""How long an orderly stop may take before the process exits regardless."""

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Stopped(KeyboardInterrupt):
    """The run was stopped by a signal (a KeyboardInterrupt, so that nothing catches it as an
    ordinary error and goes on)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        return 128 + self.signum  # what a shell reports for a process killed by it


@contextlib.contextmanager
def stoppable(
    say: Callable[[str], None],
    cleanup: Callable[[], None],
    grace: float = GRACE_SECONDS,
) -> Iterator[None]:
    """Within the block, SIGINT and SIGTERM raise `Stopped`; `cleanup` (stop the servers the run
    started) runs before a forced exit. The previous handlers come back after the block, but a
    forced exit stays armed until the process ends: an exit that hangs is cut off too."""
    first: list[int] = []

    def exit_now(signum: int) -> None:
        with contextlib.suppress(Exception):
            cleanup()
        os._exit(128 + signum)

    def handler(signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if first:
            say(f"{name} again: stopping now")
            exit_now(first[0])
        first.append(signum)
        say(
            f"{name}: stopping; the step under way is abandoned, completed stages are kept "
            f"(send {name} again to stop at once)"
        )
        timer = threading.Timer(grace, exit_now, args=(signum,))
        timer.daemon = True
        timer.start()
        raise Stopped(signum)

    if threading.current_thread() is not threading.main_thread():
        yield  # signals reach the main thread only (a test runner's worker, say)
        return
    previous = {signum: signal.signal(signum, handler) for signum in SIGNALS}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def exit_within(seconds: float, code: int, cleanup: Callable[[], None]) -> None:
    """Make sure the process is gone `seconds` from now, whatever its exit waits on (Prefect
    drains its events to an API that no longer answers, for minutes): the caller has said
    what happened, and a forced exit loses nothing a rerun needs."""

    def exit_now() -> None:
        with contextlib.suppress(Exception):
            cleanup()
        os._exit(code)

    timer = threading.Timer(seconds, exit_now)
    timer.daemon = True
    timer.start()
