"""What a node that seems stuck tells its operator, on a signal.

``kill -USR1 <pid>`` writes every pending asyncio task's stack (where each
coroutine waits: the answer when a node idles but will not finish something) and
every thread's stack to standard error. ``kill -USR2 <pid>`` writes the threads'
stacks from a C-level handler, which works even when the event loop itself is
blocked and no Python-level handler can run.
"""

from __future__ import annotations

import asyncio
import faulthandler
import signal
import sys


def install(loop: asyncio.AbstractEventLoop) -> None:
    faulthandler.register(signal.SIGUSR2, file=sys.__stderr__, all_threads=True)
    loop.add_signal_handler(signal.SIGUSR1, dump, loop)


def dump(loop: asyncio.AbstractEventLoop) -> None:
    out = sys.__stderr__
    tasks = [task for task in asyncio.all_tasks(loop) if not task.done()]
    out.write(f"--- {len(tasks)} pending asyncio tasks ---\n")
    for task in tasks:
        out.write(f"{task!r}\n")
        task.print_stack(limit=20, file=out)
    out.write("--- threads ---\n")
    out.flush()
    faulthandler.dump_traceback(file=out, all_threads=True)
    out.flush()
