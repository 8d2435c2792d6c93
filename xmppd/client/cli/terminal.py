"""The user's terminal for the interactive commands (chat, join).

Keys are read one at a time (cbreak mode when stdin is a terminal), so that
the command sees typing as it happens (XEP-0085 composing/paused) and not
only whole lines. What arrives from the network is printed above the line
being typed, which is then drawn again.
"""

from __future__ import annotations

import sys
import termios
import tty
from collections.abc import Callable
from contextlib import contextmanager

from twisted.internet import protocol, stdio

from xmppd.client.once import Once

ERASE = ("\x7f", "\x08")
END = ("\x04",)  # ctrl-D
MAX_LINE = 4096  # characters one line may hold


class Terminal(protocol.Protocol):
    def __init__(self, on_line: Callable[[str], None], on_edit: Callable[[str], None] = lambda text: None, prompt: str = "> "):
        self._on_line = on_line
        self._on_edit = on_edit
        self.prompt = prompt
        self.buffer = ""
        self._ended = Once()
        self._echo = sys.stdin.isatty()

    def ended(self):
        """Fires when the user leaves (ctrl-D, or stdin closed)."""
        return self._ended.wait()

    def show(self, text: str) -> None:
        """Print ``text`` above the line being typed."""
        self.transport.write(f"\r\x1b[K{text}\r\n{self.prompt}{self.buffer}".encode("utf-8", "replace"))

    def end(self) -> None:
        self._ended.fire(None)

    def connectionMade(self) -> None:
        self.transport.write(self.prompt.encode())

    def dataReceived(self, data: bytes) -> None:
        for key in data.decode("utf-8", "replace"):
            self._key(key)

    def _key(self, key: str) -> None:
        if key in ("\r", "\n"):
            line, self.buffer = self.buffer, ""
            self.transport.write(f"\r\x1b[K{self.prompt}".encode())
            self._on_line(line)
        elif key in ERASE:
            if self.buffer:
                self.buffer = self.buffer[:-1]
                self._write("\b \b")
                self._on_edit(self.buffer)
        elif key in END:
            self.end()
        elif key.isprintable() and len(self.buffer) < MAX_LINE:
            self.buffer += key
            self._write(key)
            self._on_edit(self.buffer)

    def _write(self, text: str) -> None:
        if self._echo:
            self.transport.write(text.encode("utf-8", "replace"))

    def connectionLost(self, reason=None) -> None:
        self.end()


@contextmanager
def cbreak():
    """Keys one at a time and no echo (we echo ourselves) while the block runs, when stdin is a terminal."""
    if not sys.stdin.isatty():
        yield
        return
    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    try:
        tty.setcbreak(fd)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def attach(terminal: Terminal) -> stdio.StandardIO:
    return stdio.StandardIO(terminal)
