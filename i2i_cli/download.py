"""Resumable, verified HTTP downloads: the one place i2i fetches anything from the network.

A download goes to `<target>.part`, resumes from it with an HTTP Range request, and is renamed onto the
target only once complete and (when a hash is known) verified. A file whose hash does not match is deleted.
Transient failures (connection, timeout, HTTP 5xx, a cut-off transfer) are retried with exponential backoff;
`download_first` falls back from the primary URL to its mirrors.
"""

from __future__ import annotations

import hashlib
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

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


RETRIES = 3  # attempts per URL for transient failures (connection, timeout, HTTP 5xx/429, cut-off transfer)
BACKOFF_S = 2.0  # wait before retry k: BACKOFF_S * 2**(k-1) seconds (2, 4, ...)
NoticeFn = Callable[[str], None]


class TransientDownloadError(DownloadError):
    """A failure worth retrying: the network or the server, not the request."""


def download(
    url: str,
    target: str | os.PathLike[str],
    *,
    sha256: str | None = None,
    progress: ProgressFn | None = None,
    timeout: float = 30.0,
    offline_hint: str = "",
    retries: int | None = None,
    backoff: float | None = None,
    notice: NoticeFn | None = None,
) -> Path:
    """Fetch `url` into `target` (resuming a `.part` file), verify `sha256` (full or prefix), return the path.

    Transient failures are retried `retries` times in all, waiting `backoff`, 2x`backoff`, ... seconds between
    attempts, each resuming the `.part` file; `notice(message)` hears of every retry."""
    retries = RETRIES if retries is None else retries
    backoff = BACKOFF_S if backoff is None else backoff
    dest = Path(target)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    for attempt in range(1, max(1, retries) + 1):
        try:
            _fetch(url, part, progress, timeout)
            break
        except TransientDownloadError as exc:
            if attempt >= max(1, retries):
                resume = "; run again to resume" if part.exists() and part.stat().st_size else ""
                raise DownloadError(f"{exc} (after {attempt} attempts{resume}). {offline_hint}".strip()) from exc
            wait = backoff * 2 ** (attempt - 1)
            if notice:
                notice(f"{exc}; retrying in {wait:g} s (attempt {attempt + 1} of {retries})")
            time.sleep(wait)
        except DownloadError as exc:
            raise DownloadError(f"{exc}. {offline_hint}".strip()) from exc
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


def download_first(
    urls: list[str],
    target: str | os.PathLike[str],
    *,
    notice: NoticeFn | None = None,
    offline_hint: str = "",
    **kwargs: Any,
) -> tuple[Path, str]:
    """Try each URL in turn (the primary, then mirrors), each with its retries; return (path, the URL used).

    Moving to the next URL starts the file again: a partial file from one host is not resumed from another."""
    dest = Path(target)
    part = dest.with_name(dest.name + ".part")
    failures: list[str] = []
    for index, url in enumerate(urls):
        upgraded = index + 1 < len(urls) and url.startswith("https://") and urls[index + 1] == "http://" + url[8:]
        options = {**kwargs, "retries": 1} if upgraded else kwargs  # no https there: go on to http at once
        try:
            return download(url, dest, notice=notice, **options), url
        except HashMismatchError:
            raise
        except DownloadError as exc:
            failures.append(str(exc))
            if index + 1 < len(urls):
                if part.exists():
                    part.unlink()
                if notice:
                    notice(f"{exc}; trying {urls[index + 1]}")
    raise DownloadError(f"{'; '.join(failures)}. {offline_hint}".strip())


def _fetch(url: str, part: Path, progress: ProgressFn | None, timeout: float) -> None:
    """One attempt: append to (or start) `part`; TransientDownloadError when a retry may succeed."""
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "i2i"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # the .part already holds everything
            return
        kind = TransientDownloadError if exc.code >= 500 or exc.code in (408, 429) else DownloadError
        raise kind(f"{url}: HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise TransientDownloadError(f"cannot download {url} ({reason})") from exc
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
            raise TransientDownloadError(f"download of {url} interrupted ({exc})") from exc
        if total is not None and have < total:
            raise TransientDownloadError(f"download of {url} stopped at {have} of {total} bytes")
