"""Each option's help, read from the comment beside (or just above) its field in the config dataclass.

The comments in the dataclasses are the one place an option is described; `i2i methods show` prints them.
A subclass that redefines a field without a comment keeps the help of the class it overrides.
"""

from __future__ import annotations

import dataclasses
import inspect
import io
import textwrap
import tokenize
from functools import cache


def _field_comments(cls: type) -> dict[str, str]:
    """{field: comment} for one class body: a trailing `# ...`, else the `#` lines right above the field."""
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):  # no source (e.g. a frozen app): options simply have no help
        return {}
    comments: dict[str, str] = {}
    pending: list[str] = []
    line_field: tuple[int, str] | None = None
    depth = 0
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.OP and tok.string in "([{":
            depth += 1
        elif tok.type == tokenize.OP and tok.string in ")]}":
            depth -= 1
        elif tok.type == tokenize.COMMENT:
            text = tok.string.lstrip("#").strip()
            if line_field and line_field[0] == tok.start[0]:
                comments[line_field[1]] = text
            elif tok.line.strip().startswith("#"):
                pending.append(text)
        elif tok.type == tokenize.NAME and depth == 0 and tok.start[1] == 4 and tok.line[4:].split(":")[0].strip() \
                == tok.string and ":" in tok.line:
            line_field = (tok.start[0], tok.string)
            if pending:
                comments[tok.string] = " ".join(pending)
            pending = []
        elif tok.type == tokenize.NL and not tok.line.strip():
            pending = []
    return comments


@cache
def option_help(cls: type) -> dict[str, str]:
    """{option: help} for a config dataclass's fields. Where a subclass comments a field its base already
    describes (usually to explain its own default), both are kept: "base help; here: subclass note"."""
    names = {f.name for f in dataclasses.fields(cls)}
    merged: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if klass is object:
            continue
        for name, text in _field_comments(klass).items():
            if name in names:
                merged[name] = f"{merged[name]}; here: {text}" if merged.get(name) and text != merged[name] else text
    return merged
