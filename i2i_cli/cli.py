"""Shared CLI pieces: the console, one-line errors, option aliases, and rich tables/progress.

Command modules import only this, typer and the standard library at the top, so `i2i --help` stays instant;
heavy imports (torch, the library) happen inside command bodies.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)

F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print one red line naming the problem and the fix; return the Exit to raise."""
    err_console.print(f"[bold red]error:[/] {message}", soft_wrap=True)
    return typer.Exit(code)


def warn(message: str) -> None:
    err_console.print(f"[yellow]warning:[/] {message}", soft_wrap=True)


def info(message: str) -> None:
    err_console.print(message, soft_wrap=True)


def handle_errors(func: F) -> F:
    """Turn library errors into one-line messages and exit codes; tracebacks only with I2I_DEBUG=1."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from i2i_cli.errors import I2IError

        try:
            return func(*args, **kwargs)
        except (typer.Exit, typer.Abort):
            raise
        except I2IError as exc:
            if os.environ.get("I2I_DEBUG"):
                raise
            raise fail(str(exc), getattr(exc, "exit_code", 2)) from None
        except KeyboardInterrupt:
            raise fail("interrupted; completed outputs are kept (run again to continue)", 130) from None
        except MemoryError:
            raise fail("out of memory; lower --batch-size or --size, or use --tile for large images", 1) from None
        except Exception as exc:  # noqa: BLE001 - last resort: one line, not a traceback
            if os.environ.get("I2I_DEBUG"):
                raise
            message = str(exc).splitlines()[0][:300] if str(exc) else ""
            if "out of memory" in message.lower():
                raise fail("out of GPU memory; lower --batch-size or --size, or --precision bf16", 1) from None
            raise fail(
                f"unexpected {type(exc).__name__}: {message} (set I2I_DEBUG=1 for a traceback and report it)", 1
            ) from None

    return wrapper  # type: ignore[return-value]


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    table = Table(title=title, title_justify="left")
    for i, column in enumerate(columns):
        # the first column names things (files, methods, weights): never wrapped or cut
        width = max([len(column)] + [len(format_value(r[0])) for r in rows]) if i == 0 else None
        table.add_column(column, no_wrap=i == 0, min_width=width)
    for row in rows:
        table.add_row(*[format_value(v) for v in row])
    console.print(table)


def print_problems(title: str, rows: Sequence[tuple[str, str]]) -> None:
    """Files and their problems, one per line, never truncated (paths must stay copyable)."""
    err_console.print(f"[bold yellow]{title}[/]")
    for file, problem in rows:
        err_console.print(f"  {file}: {problem}", soft_wrap=True, markup=False)


def format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def write_json(path: Path, obj: Any) -> None:
    from i2i_cli.fsutil import atomic_write_json

    atomic_write_json(path, obj)
    info(f"wrote {path}")


def dump_json_stdout(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")


@contextmanager
def progress_bar(description: str, total: int | None, *, transient: bool = False) -> Iterator[Callable[..., None]]:
    """A rich progress bar; yields advance(n=1, **fields) where fields become the status text."""
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
    with Progress(*columns, console=err_console, transient=transient) as bar:
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


def parse_csv(value: str | None) -> list[str]:
    return [item.strip() for item in (value or "").split(",") if item.strip()]
