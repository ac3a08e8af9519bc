"""Where the Ray engine reads and writes: a local folder or an object-store prefix (s3://, gs://, any pyarrow or
fsspec file system), behind one small interface over pyarrow.fs. Credentials are what those libraries take
(AWS_* variables and ~/.aws for S3, AWS_ENDPOINT_URL for S3-compatible servers, GOOGLE_APPLICATION_CREDENTIALS)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from i2i_cli.data.images import is_image_file, list_images
from i2i_cli.errors import ConfigError, I2IError
from i2i_cli.fsutil import atomic_write_bytes


@dataclass(frozen=True)
class Location:
    """A folder (or one file) given as a local path or a URL; `root` is its path inside its file system."""

    url: str  # as the user wrote it, for messages
    root: str  # an absolute local path, or bucket/prefix
    local: bool

    def show(self, relative: str | PurePosixPath) -> str:
        """A file under this location as the user would write it (a path, or the URL)."""
        return str(Path(self.root) / relative) if self.local else f"{self.url.rstrip('/')}/{relative}"

    def path(self, relative: str | PurePosixPath) -> str:
        """A file under this location as its file system names it."""
        return str(PurePosixPath(self.root) / relative)


def location(value: str | Path) -> Location:
    """A local path (or file://) or an object-store URL."""
    text = str(value)
    if "://" in text and not text.startswith("file://"):
        _, root = _filesystem(text)
        return Location(text, root.rstrip("/"), local=False)
    local = Path(text.removeprefix("file://")).expanduser().resolve()
    return Location(text, str(local), local=True)


def filesystem(loc: Location) -> Any:
    """The pyarrow file system of `loc` (cached per process: actors build theirs once, with their credentials)."""
    if loc.local:
        from pyarrow import fs

        return fs.LocalFileSystem()
    return _filesystem(loc.url)[0]


@functools.lru_cache(maxsize=16)
def _filesystem(url: str) -> tuple[Any, str]:
    """pyarrow's own file system for the scheme (s3, gs, hdfs), else fsspec's (s3fs, gcsfs, ...) wrapped."""
    from pyarrow import fs

    try:
        return fs.FileSystem.from_uri(url)
    except (ValueError, OSError, NotImplementedError) as pyarrow_error:
        try:
            import fsspec
        except ImportError:
            raise ConfigError(f"{url}: pyarrow cannot open this URL ({pyarrow_error}) and fsspec is not installed: "
                              "pip install 'i2i[ray]'") from pyarrow_error
        try:
            store, root = fsspec.core.url_to_fs(url)
        except (ValueError, ImportError) as exc:
            raise ConfigError(f"{url}: no file system for this URL ({exc}); install the fsspec package of its "
                              "scheme (s3fs, gcsfs, adlfs, ...)") from exc
        return fs.PyFileSystem(fs.FSSpecHandler(store)), root


def _kind(loc: Location) -> str:
    """'file', 'dir' or 'missing' (a prefix with objects under it counts as a folder)."""
    from pyarrow import fs

    try:
        info = filesystem(loc).get_file_info(loc.root)
    except OSError as exc:
        raise I2IError(f"{loc.url}: cannot be read ({exc}); check the address and the credentials") from exc
    return {fs.FileType.File: "file", fs.FileType.Directory: "dir"}.get(info.type, "missing")


def as_folder(loc: Location) -> tuple[Location, list[PurePosixPath]]:
    """The folder to read and its image files relative to it: `loc` itself, or for one file its parent."""
    if _kind(loc) != "file":
        return loc, list_files(loc)
    parent = Location(loc.url.rsplit("/", 1)[0], str(PurePosixPath(loc.root).parent), loc.local)
    return parent, [PurePosixPath(PurePosixPath(loc.root).name)]


def list_files(loc: Location, images_only: bool = True) -> list[PurePosixPath]:
    """Files under the folder `loc` relative to it, sorted as i2i lists a folder (image extensions, hidden files
    and i2i temporaries skipped)."""
    if _kind(loc) != "dir":
        return []
    if loc.local:
        files = list_images(loc.root) if images_only else [p for p in Path(loc.root).rglob("*") if p.is_file()]
        return sorted(PurePosixPath(p.relative_to(loc.root).as_posix()) for p in files)
    from pyarrow import fs

    try:
        infos = filesystem(loc).get_file_info(fs.FileSelector(loc.root, recursive=True, allow_not_found=True))
    except OSError as exc:
        raise I2IError(f"{loc.url}: cannot be listed ({exc}); check the address and the credentials") from exc
    found = []
    for info in infos:
        if info.type != fs.FileType.File:
            continue
        relative = PurePosixPath(info.path).relative_to(loc.root)
        if any(part.startswith(".") for part in relative.parts):
            continue
        if not images_only or is_image_file(Path(relative.name)):
            found.append(relative)
    return sorted(found)


def read_bytes(loc: Location, relative: str | PurePosixPath) -> bytes:
    if loc.local:
        return Path(loc.path(relative)).read_bytes()
    with filesystem(loc).open_input_stream(loc.path(relative)) as stream:
        return stream.read()


def write_bytes(loc: Location, relative: str | PurePosixPath, data: bytes) -> None:
    """Whole or not at all: a local file through a temporary name and a rename; an object in one upload, which
    an object store shows only once complete. Writing the same bytes again (a retried task) changes nothing."""
    if loc.local:
        atomic_write_bytes(loc.path(relative), data)
        return
    store, path = filesystem(loc), loc.path(relative)
    store.create_dir(str(PurePosixPath(path).parent), recursive=True)
    with store.open_output_stream(path) as stream:
        stream.write(data)


def is_inside(inner: Location, outer: Location) -> bool:
    """Whether `inner` is `outer` or under it (on one file system)."""
    if inner.local != outer.local or (not inner.local and inner.url.split("://")[0] != outer.url.split("://")[0]):
        return False
    return inner.root == outer.root or inner.root.startswith(outer.root.rstrip("/") + "/")
