"""Named random draws of one training iteration, replayable.

A method makes each random choice of an iteration (CUT's patch locations and flip, an image pool's picks)
through `draw(cache, name, make)`: if the iteration's cache already holds `cache["draws"][name]`, that value
is used, otherwise `make()` draws it and it is recorded there. The trainer starts each iteration with an
empty cache, so training draws as usual and the cache then tells what was drawn; a caller that fills
`cache["draws"]` beforehand replays given choices (the golden tests replay the official code's draws, which
come from numpy's or Python's generators, not torch's). Each method's docstring lists the names it draws.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def draw(cache: dict[str, Any], name: str, make: Callable[[], T]) -> T:
    draws = cache.setdefault("draws", {})
    if name not in draws:
        draws[name] = make()
    return draws[name]
