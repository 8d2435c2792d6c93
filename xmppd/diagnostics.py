"""What a node that seems stuck tells its operator, on a signal.

``kill -USR1 <pid>`` writes every pending asyncio task's stack (where each
coroutine waits: the answer when a node idles but will not finish something) and
every thread's stack to standard error. ``kill -USR2 <pid>`` writes the threads'
stacks from a C-level handler, which works even when the event loop itself is
blocked and no Python-level handler can run. A node started with
``PYTHONTRACEMALLOC=N`` also writes a tracemalloc snapshot on SIGUSR1, to
``snapshot_path(pid)`` (``python -m xmppd.bench login --tracemalloc`` compares two).
"""

from __future__ import annotations

import asyncio
import faulthandler
import os
import signal
import sys
import tempfile
import tracemalloc


def install(loop: asyncio.AbstractEventLoop) -> None:
    faulthandler.register(signal.SIGUSR2, file=sys.__stderr__, all_threads=True)
    loop.add_signal_handler(signal.SIGUSR1, dump, loop)


def dump(loop: asyncio.AbstractEventLoop) -> None:
    out = sys.__stderr__
    tasks = [task for task in asyncio.all_tasks(loop) if not task.done()]
    out.write(f"--- {len(tasks)} pending asyncio tasks ---\n")
    for task in tasks:
        out.write(f"{task!r}\n")
        for line in await_chain(task.get_coro()):
            out.write(f"  {line}\n")
    out.write("--- threads ---\n")
    out.flush()
    faulthandler.dump_traceback(file=out, all_threads=True)
    if tracemalloc.is_tracing():
        path = snapshot_path(os.getpid())
        tracemalloc.take_snapshot().dump(f"{path}.part")
        os.replace(f"{path}.part", path)  # whole or absent, for whoever waits for it
        out.write(f"--- tracemalloc snapshot in {path} ---\n")
    out.flush()


def snapshot_path(pid: int) -> str:
    return os.path.join(tempfile.gettempdir(), f"xmppd-{pid}.tracemalloc")


def await_chain(awaitable) -> list[str]:
    """Where a suspended coroutine waits, outermost first, down through every coroutine
    it awaits (``Task.print_stack`` shows only the outermost frame)."""
    lines = []
    while awaitable is not None:
        frame = getattr(awaitable, "cr_frame", None) or getattr(awaitable, "gi_frame", None)
        if frame is None:
            lines.append(f"waiting on {awaitable!r}"[:300])
            break
        lines.append(f"{frame.f_code.co_filename}:{frame.f_lineno} in {frame.f_code.co_name}")
        awaitable = getattr(awaitable, "cr_await", None) or getattr(awaitable, "gi_yieldfrom", None)
    return lines
