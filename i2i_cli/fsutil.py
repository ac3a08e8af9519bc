"""Safe file writing: every file i2i writes goes to a temporary name in the same folder, then is renamed.

A reader (or a run killed half-way) therefore never sees a half-written output, checkpoint or report.
"""

from __future__ import annotations

import errno
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from i2i_cli.errors import I2IError

TEMP_MARKER = ".i2i-tmp-"


class OutputExistsError(I2IError):
    def __init__(self, path: Path) -> None:
        super().__init__(f"{path} already exists: pass --overwrite to replace it, or choose another output")


def _disk_error(path: Path, exc: OSError) -> I2IError:
    if exc.errno == errno.ENOSPC:
        return I2IError(f"{path}: the disk is full; free some space and run again (earlier files are intact)")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return I2IError(f"{path}: cannot write here ({exc.strerror}); choose a writable output folder")
    return I2IError(f"{path}: could not write ({exc.strerror or exc})")


@contextmanager
def atomic_path(path: str | os.PathLike[str], *, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary path next to `path`; on success it is fsynced and renamed onto `path`.

    On any error the temporary file is removed and `path` is left as it was.
    """
    target = Path(path)
    if not overwrite and target.exists():
        raise OutputExistsError(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=TEMP_MARKER + target.name + ".", dir=target.parent)
        os.close(fd)
    except OSError as exc:
        raise _disk_error(target, exc) from exc
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        if not overwrite and target.exists():
            raise OutputExistsError(target)
        os.replace(tmp, target)
    except OSError as exc:
        raise _disk_error(target, exc) from exc
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, *, overwrite: bool = True) -> None:
    with atomic_path(path, overwrite=overwrite) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike[str], text: str, *, overwrite: bool = True) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), overwrite=overwrite)


def atomic_write_json(path: str | os.PathLike[str], obj: Any, *, overwrite: bool = True) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n", overwrite=overwrite)


def atomic_write_with(path: str | os.PathLike[str], writer: Callable[[Path], None], *, overwrite: bool = True) -> None:
    """Call writer(tmp_path) and move the result onto `path` atomically."""
    with atomic_path(path, overwrite=overwrite) as tmp:
        writer(tmp)


def remove_stale_temporaries(folder: Path) -> int:
    """Delete temporaries left by a killed process in `folder` (recursively); return how many."""
    count = 0
    if not folder.is_dir():
        return 0
    for stale in folder.rglob(TEMP_MARKER + "*"):
        try:
            stale.unlink()
            count += 1
        except OSError:
            pass
    return count
