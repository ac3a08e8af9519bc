"""Safe extraction of downloaded archives (.zip, .tar, .tar.gz/.tgz).

Refused, with a one-line error naming the member: absolute paths, '..' components, symbolic and hard links,
device files and FIFOs. Extraction goes into a temporary folder next to the target, renamed when complete,
so a dataset folder is never half-extracted.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import zipfile
from pathlib import Path, PurePosixPath

from i2i_cli.errors import I2IError
from i2i_cli.fsutil import TEMP_MARKER


class UnsafeArchiveError(I2IError):
    pass


def _check_name(archive: Path, name: str) -> None:
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise UnsafeArchiveError(f"{archive}: member '{name}' has an absolute path; refusing to extract")
    if ".." in path.parts:
        raise UnsafeArchiveError(f"{archive}: member '{name}' points outside the target ('..'); refusing to extract")


def check_archive(archive: str | os.PathLike[str]) -> list[str]:
    """The member names, after refusing anything unsafe."""
    path = Path(archive)
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                names = []
                for info in zf.infolist():
                    _check_name(path, info.filename)
                    mode = info.external_attr >> 16
                    if mode and (mode & 0o170000) == 0o120000:
                        raise UnsafeArchiveError(f"{path}: member '{info.filename}' is a symbolic link; refusing")
                    names.append(info.filename)
                return names
        with tarfile.open(path) as tf:
            names = []
            for member in tf.getmembers():
                _check_name(path, member.name)
                if member.issym() or member.islnk():
                    raise UnsafeArchiveError(f"{path}: member '{member.name}' is a link; refusing to extract")
                if not (member.isfile() or member.isdir()):
                    raise UnsafeArchiveError(f"{path}: member '{member.name}' is a device or FIFO; refusing")
                names.append(member.name)
            return names
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as exc:
        raise I2IError(f"{path}: corrupt or unreadable archive ({exc}); delete it and download again") from exc


def extract(archive: str | os.PathLike[str], target: str | os.PathLike[str]) -> Path:
    """Extract `archive` into the new folder `target` (must not exist), atomically."""
    source, dest = Path(archive), Path(target)
    if dest.exists():
        raise I2IError(f"{dest} already exists; remove it or choose another --root")
    check_archive(source)
    tmp = dest.with_name(TEMP_MARKER + dest.name)
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        if zipfile.is_zipfile(source):
            with zipfile.ZipFile(source) as zf:
                zf.extractall(tmp)
        else:
            with tarfile.open(source) as tf:
                tf.extractall(tmp, filter="data")
        os.replace(tmp, dest)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise I2IError(f"{source}: extraction failed ({exc}); delete the archive and download again") from exc
    return dest
