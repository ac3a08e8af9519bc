"""Safe extraction of downloaded archives (.zip, .tar, .tar.gz/.tgz).

Refused before anything is written, with a one-line error naming the member: absolute paths (including
Windows drive letters), '..' components, symbolic and hard links, device files and FIFOs. Extraction goes
into a temporary folder next to the target; an optional `finish` step lays the files out there, and only
then is the folder renamed into place, so a dataset folder is never half-extracted or half-laid-out.
A corrupt archive is a one-line error; the archive itself is left where it is for inspection (the caller
says so in the message).
"""

from __future__ import annotations

import os
import shutil
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from i2i_cli.errors import I2IError
from i2i_cli.fsutil import TEMP_MARKER

READ_ERRORS = (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError, ValueError, zlib.error)


class UnsafeArchiveError(I2IError):
    pass


class CorruptArchiveError(I2IError):
    pass


def _check_name(archive: Path, name: str) -> None:
    normalised = name.replace("\\", "/")
    path = PurePosixPath(normalised)
    if path.is_absolute() or (len(normalised) > 1 and normalised[1] == ":"):
        raise UnsafeArchiveError(f"{archive}: member '{name}' has an absolute path; refusing to extract")
    if ".." in path.parts:
        raise UnsafeArchiveError(f"{archive}: member '{name}' points outside the target ('..'); refusing to extract")


def _check_zip_member(archive: Path, info: zipfile.ZipInfo) -> None:
    _check_name(archive, info.filename)
    mode = info.external_attr >> 16  # Unix mode bits, when the archiver recorded them
    if not stat.S_IFMT(mode):  # permissions only (or a Windows archiver): a plain file or folder
        return
    if stat.S_ISLNK(mode):
        raise UnsafeArchiveError(f"{archive}: member '{info.filename}' is a symbolic link; refusing to extract")
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise UnsafeArchiveError(f"{archive}: member '{info.filename}' is a device or FIFO; refusing to extract")


def _check_tar_member(archive: Path, member: tarfile.TarInfo) -> None:
    _check_name(archive, member.name)
    if member.issym() or member.islnk():
        raise UnsafeArchiveError(f"{archive}: member '{member.name}' is a link; refusing to extract")
    if not (member.isfile() or member.isdir()):
        raise UnsafeArchiveError(f"{archive}: member '{member.name}' is a device or FIFO; refusing to extract")


def corrupt(archive: Path, exc: BaseException) -> CorruptArchiveError:
    reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
    return CorruptArchiveError(f"{archive}: corrupt or unreadable archive ({reason}); it was kept for inspection: "
                               "delete it and run the command again to download it afresh")


def is_zip(path: Path) -> bool:
    """Zip or tar, by name first, then by content. Content sniffing alone is not enough: zipfile finds the
    end-of-directory record of a zip stored near the end of a tar (a .pth is a zip), so tar is tried first."""
    name = path.name.lower()
    if name.endswith(".zip"):
        return True
    if name.endswith((".tar", ".tar.gz", ".tgz")):
        return False
    try:
        if tarfile.is_tarfile(path):
            return False
    except OSError:
        return False
    return zipfile.is_zipfile(path)


def check_archive(archive: str | os.PathLike[str]) -> list[str]:
    """The member names, after refusing anything unsafe (reads the whole index; raises before any write)."""
    path = Path(archive)
    try:
        if is_zip(path):
            with zipfile.ZipFile(path) as zf:
                infos = zf.infolist()
                for info in infos:
                    _check_zip_member(path, info)
                bad = zf.testzip()  # CRC of every member: a truncated download fails here, not half-way
                if bad is not None:
                    raise zipfile.BadZipFile(f"member '{bad}' fails its CRC check")
                return [info.filename for info in infos]
        with tarfile.open(path) as tf:
            members = tf.getmembers()  # reads to the end: a truncated .tar.gz fails here
            for member in members:
                _check_tar_member(path, member)
            return [member.name for member in members]
    except UnsafeArchiveError:
        raise
    except READ_ERRORS as exc:
        raise corrupt(path, exc) from exc


def read_member(archive: str | os.PathLike[str], name: str) -> bytes:
    """One member's bytes, after the same safety checks as `extract` (for a file inside a release tar)."""
    path = Path(archive)
    names = check_archive(path)
    if name not in names:
        raise I2IError(f"{path}: has no member '{name}' (it has {len(names)} members, e.g. {names[:3]})")
    try:
        if is_zip(path):
            with zipfile.ZipFile(path) as zf:
                return zf.read(name)
        with tarfile.open(path) as tf:
            handle = tf.extractfile(name)
            if handle is None:
                raise I2IError(f"{path}: member '{name}' is not a regular file")
            return handle.read()
    except READ_ERRORS as exc:
        raise corrupt(path, exc) from exc


def extract(archive: str | os.PathLike[str], target: str | os.PathLike[str],
            finish: Callable[[Path], None] | None = None) -> Path:
    """Extract `archive` into the new folder `target` (must not exist), atomically.

    `finish(folder)` runs on the complete temporary folder before the rename (lay-out, provenance file);
    if it raises, the temporary folder is removed and `target` is never created.
    """
    source, dest = Path(archive), Path(target)
    if dest.exists():
        raise I2IError(f"{dest} already exists; remove it or choose another --root")
    check_archive(source)
    tmp = dest.with_name(TEMP_MARKER + dest.name)
    if tmp.exists():  # left by an interrupted earlier run: ours by its marker name
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        try:
            if is_zip(source):
                with zipfile.ZipFile(source) as zf:
                    zf.extractall(tmp)
            else:
                with tarfile.open(source) as tf:
                    tf.extractall(tmp, filter="data")  # the stdlib's own checks, on top of ours
        except (tarfile.TarError, zipfile.BadZipFile, EOFError, ValueError, zlib.error) as exc:
            raise corrupt(source, exc) from exc
        except OSError as exc:  # the archive read fine: this is the disk (full, permissions)
            raise I2IError(f"{dest}: extraction failed ({exc}); check free space and permissions there") from exc
        if finish is not None:
            finish(tmp)
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest
