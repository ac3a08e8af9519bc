"""Resumable, verified HTTP downloads: the one place i2i fetches anything from the network.

A download goes to `<target>.part`, resumes from it with an HTTP Range request, and is renamed onto the
target only once complete and (when a hash is known) verified. A file whose hash does not match is deleted.
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from i2i_cli.errors import I2IError

ProgressFn = Callable[[int, int | None], None]  # (bytes so far, total or None)
CHUNK = 1 << 20


class DownloadError(I2IError):
    pass


class HashMismatchError(DownloadError):
    pass


def sha256_file(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def hash_matches(actual: str, expected: str) -> bool:
    """A published hash may be a prefix (torchvision's file names carry the first 8 hex digits)."""
    return bool(expected) and actual.lower().startswith(expected.lower())


def download(
    url: str,
    target: str | os.PathLike[str],
    *,
    sha256: str | None = None,
    progress: ProgressFn | None = None,
    timeout: float = 30.0,
    offline_hint: str = "",
) -> Path:
    """Fetch `url` into `target` (resuming a `.part` file), verify `sha256` (full or prefix), return the path."""
    dest = Path(target)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "i2i"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # the .part already holds everything
            response = None
        else:
            raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}. {offline_hint}".strip()) from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DownloadError(f"cannot download {url} ({reason}). {offline_hint}".strip()) from exc
    if response is not None:
        with response:
            resumed = have and response.status == 206
            if not resumed:
                have = 0
            length = response.headers.get("Content-Length")
            total = int(length) + have if length is not None else None
            try:
                with open(part, "ab" if resumed else "wb") as out:
                    while True:
                        block = response.read(CHUNK)
                        if not block:
                            break
                        out.write(block)
                        have += len(block)
                        if progress:
                            progress(have, total)
            except OSError as exc:
                raise DownloadError(f"download of {url} interrupted ({exc}); run again to resume") from exc
            if total is not None and have < total:
                raise DownloadError(f"download of {url} stopped at {have} of {total} bytes; run again to resume")
    if sha256:
        actual = sha256_file(part)
        if not hash_matches(actual, sha256):
            part.unlink()
            raise HashMismatchError(
                f"{url}: sha256 {actual[:16]}... does not match the expected {sha256[:16]}...; "
                "the file was deleted, run again (or check the source)"
            )
    os.replace(part, dest)
    return dest
