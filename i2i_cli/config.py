"""Resolve a method's config: paper defaults <- --config FILE.toml <- --set key=value <- explicit CLI options."""

from __future__ import annotations

import dataclasses
import difflib
import sys
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from i2i_cli.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


@dataclass(frozen=True)
class Range:
    """The values a numeric option takes: low <= value (< or <=) high; None is open."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False  # low itself is refused (epochs > 0)

    def refuses(self, value: float) -> bool:
        below = value <= self.low if self.low_open else value < self.low if self.low is not None else False
        return below or (self.high is not None and value > self.high)

    def describe(self) -> str:
        low = "" if self.low is None else f"{'greater than' if self.low_open else 'at least'} {self.low:g}"
        high = "" if self.high is None else f"at most {self.high:g}"
        return " and ".join(part for part in (low, high) if part)


# Every numeric option of every command, by parameter name: one place, checked before any work (the CLI's handle_errors, the API's Translator.options);
# tests/test_trial3.py walks the app and fails on a numeric option missing here.
NUMERIC_RANGES: dict[str, Range] = {
    "steps": Range(1), "epochs": Range(0, low_open=True), "size": Range(1), "batch_size": Range(1),
    "seed": Range(0), "workers": Range(0), "save_every": Range(0), "keep": Range(0), "sample_every": Range(0),
    "log_every": Range(1), "max_pixels": Range(0), "resize": Range(1), "threads": Range(1), "tile": Range(0),
    "overlap": Range(0), "num_styles": Range(1), "crf": Range(0, 63), "opset": Range(18), "min_speedup": Range(0),
    "static_size": Range(1), "n_train": Range(1), "n_test": Range(0), "n_val": Range(0), "domains": Range(2),
    "images": Range(1), "repeats": Range(1), "classes": Range(2),
    # the Ray engine, the HTTP service, reproduce and bench
    "actors": Range(1), "max_batch": Range(1), "port": Range(1, 65535), "batch_timeout": Range(0),
    "max_mb": Range(0, low_open=True), "timeout": Range(0, low_open=True), "scale": Range(0, low_open=True),
    "seeds": Range(1), "rounds": Range(1), "requests": Range(1),
}


def option_name(name: str) -> str:
    return "--" + name.rstrip("_").replace("_", "-")


def range_problem(name: str, value: Any) -> str | None:
    """'--NAME VALUE: must be ...' when `value` is outside the range of the option `name`, else None."""
    bound = NUMERIC_RANGES.get(name)
    if bound is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return f"{option_name(name)} {value:g}: must be {bound.describe()}" if bound.refuses(value) else None


def check_ranges(values: dict[str, Any]) -> None:
    """The library's side of the same rule (the Python API's options): a ConfigError with the CLI's message."""
    for name, value in values.items():
        problem = range_problem(name, value)
        if problem:
            raise ConfigError(problem)


def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def where(source: str, key: str, value: Any) -> str:
    """How the user wrote an option, for its error: --set k=v, --k v, or FILE: k = v."""
    if source == "--set":
        return f"--set {key}={value}"
    if source == "option":
        return f"--{key.replace('_', '-')} {value}"
    return f"{source}: {key}={value}"


def coerce(value: Any, annotation: Any, key: str, source: str = "--set") -> Any:
    """Convert a --set string (or a TOML value) to the field's declared type."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        if value in (None, "none", "None", "null"):
            return None
        inner = [a for a in args if a is not type(None)]
        return coerce(value, inner[0], key, source)
    if origin is typing.Literal:
        return _choice(value, args, key, source)
    if origin is tuple:
        items = value if isinstance(value, (list, tuple)) else str(value).strip("()[] ").split(",")
        return tuple(coerce(v, args[0] if args else str, key, source) for v in items if str(v).strip() != "")
    if annotation is bool:
        if isinstance(value, bool):
            return value
        text = str(value).lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{where(source, key, value)}: expected true or false")
    if annotation in (int, float, str):
        try:
            if annotation is int and isinstance(value, str) and "e" in value.lower():
                return int(float(value))
            return annotation(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where(source, key, value)}: expected {annotation.__name__}") from None
    return value


def _choice(value: Any, allowed: tuple[Any, ...], key: str, source: str = "--set") -> Any:
    """A field typed Literal[...] (gan_mode, norm, init_type, ...): refuse anything else, naming the choices."""
    for choice in allowed:
        if value == choice or str(value) == str(choice):
            return choice
    close = difflib.get_close_matches(str(value), [str(c) for c in allowed], n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    raise ConfigError(f"{where(source, key, value)}: choose {', '.join(str(c) for c in allowed)}{hint}")


def choices(annotation: Any) -> tuple[Any, ...] | None:
    """The allowed values of a config field's type (Literal, or Literal | None), else None."""
    if typing.get_origin(annotation) is typing.Literal:
        return typing.get_args(annotation)
    for arg in typing.get_args(annotation):
        if typing.get_origin(arg) is typing.Literal:
            return typing.get_args(arg)
    return None


def parse_set(items: list[str]) -> dict[str, str]:
    values: dict[str, str] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set {item}: write key=value, e.g. --set lambda_L1=50")
        key, value = item.split("=", 1)
        values[key.strip()] = value.strip()
    return values


def read_config_file(path: Path, method: str) -> dict[str, Any]:
    """A TOML file of option = value (top level, or under a [method] table)."""
    try:
        data = tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    values = {k: v for k, v in data.items() if not isinstance(v, dict)}
    values.update(data.get(method, {}) if isinstance(data.get(method), dict) else {})
    return values


def ignored_tables(path: Path, method: str) -> list[str]:
    """The [tables] of a --config file that `method` does not read (another method's, or a misspelt name)."""
    try:
        data = tomllib.loads(Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return []  # read_config_file reports it
    return [name for name, value in data.items() if isinstance(value, dict) and name != method]


def method_of(config: Any) -> str:
    """The registered method whose config class `config` is (for hints naming it)."""
    from i2i_cli.models import registry

    names = [m for m in registry.list_methods() if registry.method_class(m).config_class is type(config)]
    return names[0] if names else "METHOD"


def apply_values(config: Any, values: dict[str, Any], source: str) -> Any:
    types = _field_types(type(config))
    names = list(types)
    updates = {}
    unused = getattr(type(config), "unused", ())
    for key, value in values.items():
        if key in unused:
            place = f"--{key.replace('_', '-')}" if source == "option" else f"{source}: '{key}'"
            raise ConfigError(f"{place} is not used by this method; drop it")
        if key not in types:
            close = difflib.get_close_matches(key, names, n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else f"; see `i2i methods show {method_of(config)}`"
            raise ConfigError(f"{source}: '{key}' is not an option of this method{hint}")
        updates[key] = coerce(value, types[key], key, source)
        problem = type(config).value_problem(key, updates[key]) if hasattr(type(config), "value_problem") else None
        if problem:
            raise ConfigError(f"{where(source, key, value)}: {problem}")
    return dataclasses.replace(config, **updates)


def resolve_config(
    method: str,
    *,
    config_file: Path | None = None,
    overrides: list[str] | None = None,
    explicit: dict[str, Any] | None = None,
) -> Any:
    """The fully resolved config dataclass of `method` (raises ConfigError naming the bad key)."""
    from i2i_cli.models import registry

    try:
        cls = registry.method_class(method)
    except KeyError:
        raise ConfigError(f"unknown method '{method}'; known: {', '.join(registry.list_methods())}") from None
    config = cls.config_class()
    default_size, default_load = config.size, config.load_size
    if config_file is not None:
        config = apply_values(config, read_config_file(config_file, method), str(config_file))
    set_values = parse_set(overrides or [])
    config = apply_values(config, set_values, "--set")
    given = {k: v for k, v in (explicit or {}).items() if v is not None}
    config = apply_values(config, given, "option")
    load_given = "load_size" in set_values or (config_file is not None and config.load_size != default_load)
    if config.size != default_size and not load_given:
        # Keep the reference's load/crop ratio (286/256) when only the size changes.
        load = round(config.size * default_load / default_size) if default_load else 0
        config = dataclasses.replace(config, load_size=load)
    _validate(config)
    return config


def _validate(config: Any) -> None:
    if config.size < 16:
        raise ConfigError(f"size {config.size} is too small; use --size 16 or more")
    if config.load_size and config.load_size < config.size:
        raise ConfigError(f"load_size {config.load_size} is smaller than size {config.size}; raise load_size or set it to 0")
    if config.direction not in ("AtoB", "BtoA"):
        raise ConfigError(f"--direction {config.direction}: choose AtoB or BtoA")
    if config.batch_size < 1:
        raise ConfigError("--batch-size must be at least 1")
    for problem in config.problems():  # what the method's options say together (MethodConfig.problems)
        raise ConfigError(problem)
