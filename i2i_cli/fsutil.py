"""Safe file writing: every file i2i writes goes to a temporary name in the same folder, then is renamed.

A reader (or a run killed half-way) therefore never sees a half-written output, checkpoint or report.
Temporaries are created with mode 0666 minus the umask, as `open()` would, so outputs get the modes users
expect (0644 under umask 022), not mkstemp's 0600. `check_output_folder` / `check_output_file` refuse an
output that cannot be written before any work starts.
"""

from __future__ import annotations

import errno
import json
import os
import secrets
import time
from collections.abc import Iterator
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
        tmp = create_temporary(target.parent, TEMP_MARKER + target.name + ".")
    except OSError as exc:
        raise _disk_error(target, exc) from exc
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        if not overwrite and target.exists():
            raise OutputExistsError(target)
        commit(tmp, target)
    except OSError as exc:
        raise _disk_error(target, exc) from exc
    finally:
        if tmp.exists():
            tmp.unlink()


def commit(tmp: Path, target: Path) -> None:
    """The one rename that makes every output of i2i appear (files and folders alike)."""
    os.replace(tmp, target)


@contextmanager
def atomic_folder(path: str | os.PathLike[str], *, replace: bool = False, mode: int | None = None) -> Iterator[Path]:
    """Yield a temporary folder next to `path` (its parents made); on success its files are fsynced and it is
    renamed onto `path` (an existing `path` is removed first when `replace`). Any OSError becomes the one-line
    disk message and the temporary folder is removed: a checkpoint or Hub folder is whole or absent."""
    import shutil
    import tempfile

    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=TEMP_MARKER + target.name + ".", dir=target.parent))
        staging.chmod(mode if mode is not None else _folder_mode(target.parent))
    except OSError as exc:
        raise _disk_error(target, exc) from exc
    try:
        yield staging
        for file in (p for p in staging.rglob("*") if p.is_file()):
            with open(file, "rb") as handle:
                os.fsync(handle.fileno())
        if target.exists() and replace:
            shutil.rmtree(target)
        commit(staging, target)
    except OSError as exc:
        raise _disk_error(target, exc) from exc
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def _folder_mode(parent: Path) -> int:
    """0777 minus the umask (mkdtemp makes folders 0700): read from a new file's mode, as nothing process-wide
    may be changed to read the umask."""
    probe = create_temporary(parent, TEMP_MARKER + "mode.")
    try:
        return 0o777 & ~(0o666 & ~probe.stat().st_mode)
    finally:
        probe.unlink()


def create_temporary(folder: Path, prefix: str) -> Path:
    """A new empty file `folder/prefix<random>`, created exclusively with mode 0666 & ~umask (the kernel applies
    the umask, so nothing process-wide is read or changed)."""
    for _ in range(100):
        candidate = folder / f"{prefix}{secrets.token_hex(4)}"
        try:
            fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return candidate
    raise FileExistsError(errno.EEXIST, "no free temporary name", str(folder))


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, *, overwrite: bool = True) -> None:
    with atomic_path(path, overwrite=overwrite) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike[str], text: str, *, overwrite: bool = True) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), overwrite=overwrite)


def atomic_write_json(path: str | os.PathLike[str], obj: Any, *, overwrite: bool = True) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n", overwrite=overwrite)


# Temporaries made before this process started are left by a killed one; later ones may be another live
# process's (two translates sharing an OUT), so they are never swept.
STARTED = time.time()


def remove_stale_temporaries(folder: Path, prefix: str = TEMP_MARKER, recursive: bool = True) -> int:
    """Delete temporaries (files or folders named `prefix`...) a killed i2i left in `folder`, older than this
    process; return how many. Each command sweeps its own OUT: translate, export, train, hub --to-folder."""
    import shutil

    if not folder.is_dir():
        return 0
    count = 0
    found = folder.rglob(prefix + "*") if recursive else folder.glob(prefix + "*")
    for stale in sorted(found, key=lambda p: len(p.parts), reverse=True):
        try:
            if stale.lstat().st_mtime >= STARTED:
                continue
            if stale.is_dir() and not stale.is_symlink():
                shutil.rmtree(stale)
            else:
                stale.unlink()
            count += 1
        except OSError:
            pass
    return count


# --- checking outputs before the work ------------------------------------------------------------------------


def _nearest_existing(path: Path) -> Path:
    """`path` itself or its closest ancestor that exists (what a later mkdir(parents=True) would write into)."""
    current = path.absolute()
    while not current.exists() and current != current.parent:
        current = current.parent
    return current


def _probe_writable(folder: Path) -> str | None:
    """None when a file can be created in `folder`, else the reason. os.access alone is not enough: it says yes
    to root on a read-only folder's permissions but not on a read-only file system, so a real file is tried."""
    if not os.access(folder, os.W_OK | os.X_OK):
        return "permission denied"
    try:
        probe = create_temporary(folder, TEMP_MARKER + "probe.")
    except OSError as exc:
        return exc.strerror or str(exc)
    probe.unlink()
    return None


def folds_case(path: str | os.PathLike[str]) -> bool:
    """Whether files written under `path` (or its closest existing ancestor) ignore case, as on macOS's and
    Windows' default file systems: there `A.png` and `a.png` are one file. Probed with a real file; False when
    the folder cannot be written (that is refused elsewhere)."""
    folder = _nearest_existing(Path(path))
    if not folder.is_dir():
        folder = folder.parent
    try:
        probe = create_temporary(folder, TEMP_MARKER + "case.")
    except OSError:
        return False
    try:
        return (probe.parent / probe.name.upper()).exists()
    finally:
        probe.unlink()


def _refuse_under_file(path: Path, option: str, existing: Path) -> None:
    if not existing.is_dir():
        raise I2IError(f"{option} {path}: {existing} is a file, so nothing can be written under it; "
                       f"choose another {option}")


def check_output_folder(path: str | os.PathLike[str], option: str) -> None:
    """Refuse, before any work, an output folder that is a file, lies under a file, or cannot be written.

    Nothing is created: a missing folder is checked through its closest existing ancestor."""
    folder = Path(path)
    existing = _nearest_existing(folder)
    if existing == folder.absolute() and not existing.is_dir():
        raise I2IError(f"{option} {folder}: is a file, not a folder; choose a folder (it is made if missing)")
    _refuse_under_file(folder, option, existing)
    reason = _probe_writable(existing)
    if reason:
        raise I2IError(f"{option} {folder}: cannot write in {existing} ({reason}); choose a writable folder")


def check_output_file(path: str | os.PathLike[str], option: str, *, overwrite: bool = True,
                      suffix: str = ".json") -> None:
    """Refuse, before any work, an output file that is a folder, lies under a file, cannot be written, or
    exists when `overwrite` is False."""
    file = Path(path)
    if file.is_dir():
        raise I2IError(f"{option} {file}: is a folder; name a file to write (e.g. {file / ('out' + suffix)})")
    if file.exists() and not overwrite:
        raise OutputExistsError(file)
    existing = _nearest_existing(file.parent)
    _refuse_under_file(file, option, existing)
    reason = _probe_writable(existing)
    if reason:
        raise I2IError(f"{option} {file}: cannot write in {existing} ({reason}); choose a writable place")
