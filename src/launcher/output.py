"""Children's output, interleaved line by line behind a fixed-width, coloured name: `api        | ...`.

rich drops the colours by itself when the output is not a terminal (a pipe, a log file, CI).
"""

from __future__ import annotations

import threading
from typing import IO

from rich.console import Console
from rich.text import Text

COLOURS = ("cyan", "magenta", "green", "yellow", "blue", "bright_red", "bright_cyan", "bright_magenta")
LAUNCHER = "launcher"


class Prefixed:
    def __init__(self, names: list[str], console: Console | None = None) -> None:
        self.console = console or Console(highlight=False, soft_wrap=True)
        self.width = max(len(n) for n in [*names, LAUNCHER])
        self.styles = {name: COLOURS[i % len(COLOURS)] for i, name in enumerate(names)}
        self.styles[LAUNCHER] = "bold"
        self._lock = threading.Lock()

    def line(self, name: str, text: str | Text) -> None:
        body = text if isinstance(text, Text) else Text.from_ansi(text)
        prefix = Text(f"{name:<{self.width}} | ", style=self.styles.get(name, ""))
        with self._lock:
            self.console.print(prefix + body)

    def say(self, text: str, style: str = "") -> None:
        """A line from the launcher itself."""
        self.line(LAUNCHER, Text(text, style=style))

    def pump(self, name: str, stream: IO[bytes]) -> threading.Thread:
        """Copy `stream` line by line until it closes, in a daemon thread."""
        def copy() -> None:
            for raw in iter(stream.readline, b""):
                self.line(name, raw.decode("utf-8", errors="replace").rstrip("\r\n"))
            stream.close()

        thread = threading.Thread(target=copy, name=f"pump-{name}", daemon=True)
        thread.start()
        return thread
