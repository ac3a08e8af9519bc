"""Optional dependencies: a feature that needs one names the extra that installs it."""

from __future__ import annotations

import importlib.util

from i2i_cli.errors import ConfigError


def require_extra(module: str, extra: str, feature: str) -> None:
    """Raise a one-line error naming `pip install 'i2i[extra]'` when `module` is not installed."""
    if importlib.util.find_spec(module) is None:
        raise ConfigError(f"{feature} need the optional package {module}: pip install 'i2i[{extra}]' "
                          f"(or pip install {module.replace('_', '-') if module != 'av' else 'av'})")
