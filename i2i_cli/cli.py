"""Shared CLI pieces: the console, one-line errors, option types and checks, --json, rich tables/progress.

Command modules import only this, typer and the standard library at the top, so `i2i --help` stays instant;
heavy imports (torch, the library) happen inside command bodies.
"""

from __future__ import annotations

import difflib
import functools
import json
import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal, TypeVar

import typer
import typer.core
from rich.console import Console
from rich.table import Table

# soft_wrap: summary lines are never broken by rich (a path or a number stays whole; the terminal wraps them)
console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)

F = TypeVar("F", bound=Callable[..., Any])

# Options with fixed choices: typer turns a Literal into a choice that `--help` lists and completion offers.
Precision = Literal["fp32", "bf16", "fp16"]
InferencePrecision = Literal["auto", "fp32", "bf16", "fp16"]
Runtime = Literal["auto", "onnxruntime", "openvino"]  # .onnx files (inference/openvino_runtime.py)  # auto: bf16 on CPUs with native bf16
ExportPrecision = Literal["fp32", "fp16", "bf16", "int8"]
Direction = Literal["AtoB", "BtoA"]
Blend = Literal["linear", "cosine"]
NanPolicy = Literal["stop", "skip"]
DataCache = Literal["auto", "memory", "disk", "off"]
FidMode = Literal["clean", "legacy_tensorflow", "legacy_pytorch", "stargan_v2", "stargan-v2"]
CompileMode = Literal["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"]

# --device is open-ended (cuda:N), so it is checked by pattern and completed from the common values.
DEVICE_PATTERN = re.compile(r"(auto|cpu|mps|cuda(:\d+)?)")
DEVICE_HELP = "auto (CUDA when present), cpu, cuda or cuda:N."


LIBRARIES = r"(i2i_cli|models|torch|torchvision|lpips|cleanfid|onnx|onnxscript|onnxruntime|scipy|numpy|PIL|safetensors)(\..*)?"


def quiet_library_warnings() -> None:
    """Libraries' deprecation notes (torchvision's `pretrained=`, torch.jit's FutureWarning) are for i2i's
    developers, not its users: hidden in the CLI, unless I2I_DEBUG=1 or python -W / PYTHONWARNINGS asks.
    (i2i itself never warns through `warnings`: one attributed to i2i code came from a library call in it.)"""
    import warnings

    if os.environ.get("I2I_DEBUG") or sys.warnoptions:
        return
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning, module=LIBRARIES)


def plain(text: str) -> str:
    """`text` shown as written: rich would read [video] in "pip install 'i2i[video]'" as markup and drop it.
    Every message and help text of the CLI passes through here (help strings are written escaped: pip_extra)."""
    from rich.markup import escape

    return escape(text)


def pip_extra(extra: str) -> str:
    """`pip install 'i2i[EXTRA]'` for a help text (typer renders help as rich markup)."""
    return plain(f"pip install 'i2i[{extra}]'")


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print one red line naming the problem and the fix; return the Exit to raise."""
    err_console.print(f"[bold red]error:[/] {plain(message)}", soft_wrap=True)
    return typer.Exit(code)


_CHOICE_MESSAGE = re.compile(r"^(?:Value error, )?'(?P<value>.*)' is not one of (?P<choices>.*?)\.?$", re.S)


def usage_error_line(exc: Any) -> str:
    """click's usage errors (a bad choice, a missing argument, an unknown option) as one line naming the option,
    the value and the fix, instead of its framed multi-line box."""
    message = exc.format_message()
    param = getattr(exc, "param", None)
    names = getattr(exc, "param_hint", None) or (param.opts[0] if param is not None and getattr(param, "opts", None) else None)
    if isinstance(names, (list, tuple)):
        names = " / ".join(names)
    choice = _CHOICE_MESSAGE.match(getattr(exc, "message", "") or "")
    if names and choice:
        options = [c.strip().strip("'") for c in choice["choices"].split(",")]
        allowed = f"{', '.join(options[:-1])} or {options[-1]}" if len(options) > 1 else options[0]
        close = difflib.get_close_matches(choice["value"], options, 1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        return f"{str(names).strip(chr(39))} {choice['value']}: choose {allowed}{hint}"
    command = exc.ctx.command_path if getattr(exc, "ctx", None) is not None else "i2i"
    return f"{message.rstrip('.')} (see `{command} --help`)"


class OneLineUsageErrors(typer.core.TyperGroup):
    """The root command group: click's usage errors become the same one red line as every other error."""

    def main(self, args: Any = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            result = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except typer.core._click.exceptions.NoArgsIsHelpError as exc:
            typer.echo(exc.ctx.get_help() if exc.ctx is not None else exc.format_message())
            sys.exit(exc.exit_code)
        except typer.core._click.exceptions.ClickException as exc:
            err_console.print(f"[bold red]error:[/] {plain(usage_error_line(exc))}", soft_wrap=True, markup=True,
                              highlight=False)
            sys.exit(exc.exit_code)
        except typer.Abort:
            err_console.print("[bold red]error:[/] aborted", soft_wrap=True)
            sys.exit(1)
        sys.exit(result if isinstance(result, int) else 0)


def warn(message: str) -> None:
    err_console.print(f"[yellow]warning:[/] {plain(message)}", soft_wrap=True)


def info(message: str) -> None:
    err_console.print(message, soft_wrap=True, markup=False)


def _check_device(value: str | None) -> str | None:
    if value is not None and not DEVICE_PATTERN.fullmatch(value):
        raise fail(f"--device {value}: not a device; use auto, cpu, cuda or cuda:N (e.g. cuda:1)")
    return value


def _complete_device(incomplete: str) -> list[str]:
    return [d for d in ("auto", "cpu", "cuda", "cuda:0", "cuda:1", "mps") if d.startswith(incomplete)]


def device_option(help: str = DEVICE_HELP, **kwargs: Any) -> Any:
    """The --device option of every command: checked when parsed (before torch loads), completed in shells."""
    return typer.Option("--device", help=help, callback=_check_device, autocompletion=_complete_device,
                        metavar="auto|cpu|cuda|cuda:N", **kwargs)


def existing_path(what: str, fix: str) -> Callable[..., Any]:
    """A typer callback refusing a path that does not exist, when parsed: the answer comes before torch loads."""

    def check(ctx: typer.Context, param: typer.CallbackParam, value: Path | None) -> Path | None:
        if value is None or ctx.resilient_parsing or Path(value).exists() or str(value).startswith("hf:") or (
                "://" in str(value)):  # a URL (s3://...): its engine checks it
            return value
        if "@" in str(value) and Path(str(value).rpartition("@")[0]).is_dir():
            return value  # RUN@best, RUN@last, RUN@step_N: resolved (and refused if wrong) by the checkpoint loader
        name = param.opts[0] if param.opts and param.opts[0].startswith("-") else (param.name or "").upper()
        hint = _close_names(Path(value))
        raise fail(f"{name} {Path(value)}: no such {what}{hint}; {fix}")

    return check


def _close_names(path: Path) -> str:
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        return ""
    try:
        names = [p.name for p in parent.iterdir()]
    except OSError:
        return ""
    close = difflib.get_close_matches(path.name, names, n=3)
    return f" (did you mean {', '.join(str(parent / c) for c in close)}?)" if close else ""


def known_method(value: str | None) -> str | None:
    """--model: a registered method (checked when parsed, before torch loads), with the close match."""
    if value is None:
        return None
    from i2i_cli.models import registry

    names = registry.list_methods()
    if value not in names:
        close = difflib.get_close_matches(value, names, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise fail(f"--model {value}: unknown method '{value}'{hint}; known: {', '.join(names)}")
    return value


def method_names(incomplete: str) -> list[str]:
    from i2i_cli.models import registry

    return [name for name in registry.list_methods() if name.startswith(incomplete)]


JSON_HELP_RULE = "FILE, or - for stdout; an existing FILE needs --overwrite"


def json_option(help: str) -> Any:
    """The --json option of every command; the same rule everywhere (see check_json_target)."""
    return typer.Option("--json", help=f"{help} ({JSON_HELP_RULE}).", metavar="FILE|-")


def check_json_target(path: Path | None, overwrite: bool) -> None:
    """One rule for --json: `-` is stdout; a folder is refused; an existing file only with --overwrite."""
    if path is None or str(path) == "-":
        return
    if path.is_dir():
        raise fail(f"--json {path}: is a folder; pass a file name, e.g. --json {path / 'result.json'}")
    if path.exists() and not overwrite:
        raise fail(f"--json {path}: already exists; pass --overwrite to replace it, or another file (or - for stdout)")
    if not path.parent.exists() and str(path.parent):
        raise fail(f"--json {path}: the folder {path.parent} does not exist; create it or choose another file")


@contextmanager
def _tables_to_stderr(json_out: Any) -> Iterator[None]:
    """With --json - the JSON alone goes to stdout, so a pipe gets valid JSON; tables go to stderr."""
    if str(json_out) != "-":
        yield
        return
    console.file = sys.stderr
    try:
        yield
    finally:
        console.file = None  # type: ignore[assignment]  # back to following sys.stdout (rich's default)


def check_numeric_ranges(values: dict[str, Any]) -> None:
    """A numeric option outside its range (config.NUMERIC_RANGES): one line naming it, the value and what it
    takes (exit 2)."""
    from i2i_cli.config import range_problem

    for name, value in values.items():
        problem = range_problem(name, value)
        if problem:
            raise fail(problem)


def _plain_number(value: str) -> bool:
    try:
        return float(value) >= 0
    except ValueError:
        return False


# Environment variables i2i reads, with what they take: checked before any work, like options.
ENVIRONMENT: dict[str, tuple[str, Callable[[str], bool]]] = {
    "I2I_MAX_PIXELS": ("a whole number of pixels (0: no limit)", str.isdigit),
    "I2I_PROGRESS": ("plain or bar", lambda v: v.lower() in ("plain", "bar")),
    "I2I_PROGRESS_SECONDS": ("a number of seconds, 0 or more", _plain_number),
    "I2I_OFFLINE": ("1 or 0 (true or false)", lambda v: v in ("0", "1", "true", "false", "True", "False")),
    "I2I_WEIGHTS_DIR": ("an existing folder of weight files", lambda v: Path(v).is_dir()),
    "I2I_HOME": ("a folder (made if missing), not a file", lambda v: not Path(v).is_file()),
}


def check_environment(environ: Any = None) -> None:
    """A set but unusable I2I_* variable: one line naming it, its value and what it takes."""
    environ = os.environ if environ is None else environ
    for name, (takes, valid) in ENVIRONMENT.items():
        value = environ.get(name)
        if value and not valid(value):
            raise fail(f"{name}={value}: takes {takes}; set it so or unset it")


def handle_errors(func: F) -> F:
    """Turn library errors into one-line messages and exit codes; tracebacks only with I2I_DEBUG=1.

    It also applies the --json rule (check_json_target) before the command does any work."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from i2i_cli.errors import I2IError

        check_environment()
        check_numeric_ranges(kwargs)
        json_out = kwargs.get("json_out")
        if isinstance(json_out, Path):
            check_json_target(json_out, bool(kwargs.get("overwrite")))
        try:
            with _tables_to_stderr(json_out):
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
    """The title goes on its own line: inside the table rich would wrap it to the table's width, mid-path."""
    from rich.text import Text

    console.print(Text(title, style="italic"), soft_wrap=True)
    table = Table()
    for i, column in enumerate(columns):
        # the first column names things (files, methods, weights): never wrapped or cut
        width = max([len(column)] + [len(format_value(r[0])) for r in rows]) if i == 0 else None
        table.add_column(column, no_wrap=i == 0, min_width=width)
    for row in rows:
        table.add_row(*[format_value(v) for v in row])
    # a terminal fits the table to its width; a log (no terminal, rich's 80 columns) gets it whole, never cut
    if console.is_terminal:
        console.print(table)
        return
    width = console.width
    console.width = max(width, console.measure(table, options=console.options.update_width(100_000)).maximum)
    try:
        console.print(table)
    finally:
        console.width = width


def print_records(title: str, records: Sequence[tuple[str, Sequence[tuple[str, Any]]]]) -> None:
    """Named entries with their fields one per line, whole (no table cell cuts a URL or path to "...")."""
    from rich.text import Text

    console.print(Text(title, style="italic"), soft_wrap=True)
    width = max([len(key) for _, fields in records for key, _ in fields] or [0])
    for name, fields in records:
        console.print(Text(name, style="bold"), soft_wrap=True)
        for key, value in fields:
            console.print(Text(f"  {key + ':':<{width + 1}} {format_value(value)}"), soft_wrap=True)


def finish_with_problems(rows: Sequence[tuple[str, str]], title: str, fix: str) -> None:
    """The one exit rule of the commands that go on past bad files (translate, eval, data check): the files that
    could not be used are listed with the reason and the fix, the rest is done, and the exit code is 1."""
    if not rows:
        return
    print_problems(title, rows)
    warn(fix)
    raise typer.Exit(1)


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
    """--json FILE (atomically) or --json - (stdout); the rule for an existing FILE ran before the work."""
    if str(path) == "-":
        dump_json_stdout(obj)
        return
    from i2i_cli.fsutil import atomic_write_json

    atomic_write_json(path, obj)
    info(f"wrote {path}")


def dump_json_stdout(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")
    sys.stdout.flush()


@contextmanager
def progress_bar(description: str, total: int | None, *, transient: bool = False) -> Iterator[Callable[..., None]]:
    """Progress on stderr; yields advance(n=1, status=, completed=, total=) (status: e.g. the losses).

    A rich bar on a terminal; plain lines every few seconds otherwise (logs): see i2i_cli/progress.py."""
    from i2i_cli.progress import progress

    with progress(description, total, console=err_console, transient=transient) as advance:
        yield advance


def parse_csv(value: str | None) -> list[str]:
    return [item.strip() for item in (value or "").split(",") if item.strip()]
