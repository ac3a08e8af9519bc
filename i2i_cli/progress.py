"""Progress of long work: a rich bar on a terminal, plain periodic lines in a log (nohup, SLURM, CI).

Every command reports progress through `progress(...)`, which yields advance(n=1, status=, completed=, total=).
A rich bar redraws in place, which a log file cannot show (it gets one cut-off bar at the end), so when the
stream is not a terminal a plain line is printed instead: at the first step, then every few seconds (and at
least every few seconds while nothing advances, so a long export still shows it is alive), then at the end:

    train pix2pix: 20/40 (50%)  3.1/s  elapsed 6 s  ETA 6 s  G_GAN 0.693  G_L1 0.121
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO, Any

DEFAULT_INTERVAL_S = 5.0  # I2I_PROGRESS_SECONDS overrides it

Advance = Callable[..., None]


def plain_wanted(stream: IO[str]) -> bool:
    """Plain lines unless the stream is a terminal; I2I_PROGRESS=plain|bar forces one."""
    forced = os.environ.get("I2I_PROGRESS", "").lower()
    if forced in ("plain", "bar"):
        return forced == "plain"
    isatty = getattr(stream, "isatty", None)
    return not (isatty and isatty())


def interval_seconds() -> float:
    try:
        return max(0.0, float(os.environ.get("I2I_PROGRESS_SECONDS", DEFAULT_INTERVAL_S)))
    except ValueError:
        return DEFAULT_INTERVAL_S


def format_seconds(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


class PlainProgress:
    """Periodic one-line reports of completed/total, rate, elapsed time, ETA and a status (e.g. losses)."""

    def __init__(self, description: str, total: int | None, stream: IO[str], interval: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.description = description
        self.total = total
        self.stream = stream
        self.interval = interval
        self.clock = clock
        self.completed = 0
        self.status = ""
        self.started = clock()
        self.rate_origin: tuple[float, int] | None = None  # (time, completed) of the first update
        self.last_print: float | None = None
        self.printed_completed: int | None = None
        self.shown_progress = False
        self.lock = threading.Lock()

    def advance(self, n: int = 1, status: str | None = None, completed: int | None = None,
                total: int | None = None) -> None:
        with self.lock:
            now = self.clock()
            if total is not None:
                self.total = total
            self.completed = completed if completed is not None else self.completed + n
            if status is not None:
                self.status = status
            if self.rate_origin is None:
                self.rate_origin = (now, self.completed)
                return  # the starting point (e.g. a resumed step), not progress yet
            finished = self.total is not None and self.completed >= self.total
            first = self.completed != self.rate_origin[1] and not self.shown_progress  # the first step: its rate
            due = first or now - (self.last_print or 0.0) >= self.interval
            if (due or finished) and self.completed != self.printed_completed:
                self._print(now)

    def tick(self) -> None:
        """Called by the heartbeat: a line when nothing was printed for an interval."""
        with self.lock:
            now = self.clock()
            if now - (self.last_print if self.last_print is not None else self.started) >= self.interval:
                self._print(now)

    def finish(self) -> None:
        with self.lock:
            if self.completed != self.printed_completed or self.last_print is None:
                self._print(self.clock(), done=True)

    def line(self, now: float, done: bool = False) -> str:
        parts = [f"{self.description}:"]
        if self.rate_origin is None:
            parts.append("working")
        elif self.total:
            parts.append(f"{self.completed}/{self.total} ({100 * self.completed / self.total:.0f}%)")
        elif self.completed:
            parts.append(str(self.completed))
        rate = self.rate(now)
        if rate:
            parts.append(f"{rate:.3g}/s")
        parts.append(f"elapsed {format_seconds(now - self.started)}")
        if rate and self.total and not done:
            parts.append(f"ETA {format_seconds(max(0, self.total - self.completed) / rate)}")
        if done:
            parts.append("done")
        if self.status:
            parts.append(self.status)
        return "  ".join(parts)

    def rate(self, now: float) -> float | None:
        if self.rate_origin is None or now <= self.rate_origin[0]:
            return None
        steps = self.completed - self.rate_origin[1]
        return steps / (now - self.rate_origin[0]) if steps > 0 else None

    def _print(self, now: float, done: bool = False) -> None:
        self.stream.write(self.line(now, done) + "\n")
        self.stream.flush()
        self.last_print, self.printed_completed = now, self.completed
        self.shown_progress |= self.rate_origin is not None and self.completed != self.rate_origin[1]


@contextmanager
def plain_progress(description: str, total: int | None, stream: IO[str],
                   interval: float | None = None) -> Iterator[Advance]:
    reporter = PlainProgress(description, total, stream, interval_seconds() if interval is None else interval)
    stop = threading.Event()

    def heartbeat() -> None:
        while not stop.wait(max(reporter.interval, 0.5)):
            reporter.tick()

    thread = threading.Thread(target=heartbeat, name="i2i-progress", daemon=True)
    thread.start()
    try:
        yield reporter.advance
    finally:
        stop.set()
        thread.join()
    reporter.finish()  # only after success: an error's one line is the last thing printed


@contextmanager
def rich_progress(description: str, total: int | None, console: Any, transient: bool = False) -> Iterator[Advance]:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = [
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[status]}"),
    ]
    with Progress(*columns, console=console, transient=transient) as bar:
        task = bar.add_task(description, total=total, status="")

        def advance(n: int = 1, status: str | None = None, completed: int | None = None,
                    total: int | None = None) -> None:
            if total is not None:
                bar.update(task, total=total)
            if completed is not None:
                bar.update(task, completed=completed)
            else:
                bar.advance(task, n)
            if status is not None:
                bar.update(task, status=status)

        yield advance


@contextmanager
def progress(description: str, total: int | None = None, *, console: Any = None, transient: bool = False,
             stream: IO[str] | None = None, interval: float | None = None) -> Iterator[Advance]:
    """The one progress reporter: a rich bar on a terminal, else plain lines every `interval` seconds."""
    stream = stream if stream is not None else (console.file if console is not None else sys.stderr)
    if plain_wanted(stream):
        with plain_progress(description, total, stream, interval) as advance:
            yield advance
    else:
        with rich_progress(description, total, console, transient) as advance:
            yield advance
