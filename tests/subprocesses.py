"""Stopping the servers tests start as processes (redis-server, haproxy, prosody)."""

from __future__ import annotations

import subprocess


def terminate(process: subprocess.Popen, timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL if it hangs past ``timeout`` seconds; reaped either way."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
