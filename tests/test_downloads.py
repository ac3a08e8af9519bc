"""Dataset downloads from a loopback server: resume, layout, corrupt archives, unsafe members refused."""

from __future__ import annotations

import io
import json
import tarfile
import zipfile

import pytest
from PIL import Image

from i2i_cli.archive import UnsafeArchiveError, extract
from i2i_cli.data.layouts import detect_layout
from i2i_cli.datasets_download import download_dataset
from i2i_cli.errors import I2IError
from tests.http_server import serve


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (1, 2, 3)).save(buffer, format="PNG")
    return buffer.getvalue()


def _cyclegan_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for folder in ("trainA", "trainB", "testA", "testB"):
            for i in range(2):
                zf.writestr(f"horse2zebra/{folder}/{i}.png", _png())
    return buffer.getvalue()


def test_download_resumes_extracts_and_lays_out(tmp_path):
    archive = _cyclegan_zip()
    with serve({"/h2z.zip": archive}) as (base, ranges):
        (tmp_path / "horse2zebra.zip.part").write_bytes(archive[:100])
        result = download_dataset("horse2zebra", tmp_path, url=f"{base}/h2z.zip")
    assert ranges == ["bytes=100-"]
    assert detect_layout(result.root).kind == "unaligned"
    assert json.loads((result.root / ".i2i-source.json").read_text())["archive_sha256"] == result.sha256
    assert not (tmp_path / "horse2zebra.zip").exists()
    with pytest.raises(I2IError, match="already exists"):
        download_dataset("horse2zebra", tmp_path, url=f"{base}/h2z.zip")


def test_corrupt_archive_is_a_clear_error_and_nothing_is_left(tmp_path):
    with serve({"/bad.zip": b"PK\x03\x04 this is not a zip"}) as (base, _):
        with pytest.raises(I2IError, match="corrupt or unreadable archive"):
            download_dataset("horse2zebra", tmp_path, url=f"{base}/bad.zip")
    assert not (tmp_path / "horse2zebra").exists()


def _tar(tmp_path, build) -> object:
    path = tmp_path / "evil.tar"
    with tarfile.open(path, "w") as tf:
        build(tf)
    return path


def _add(tf, name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> None:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    data = b"x" if kind == tarfile.REGTYPE else b""
    info.size = len(data)
    tf.addfile(info, io.BytesIO(data))


@pytest.mark.parametrize("name, kind, link, message", [
    ("../escape.txt", tarfile.REGTYPE, "", "outside the target"),
    ("/etc/evil.txt", tarfile.REGTYPE, "", "absolute path"),
    ("data/link", tarfile.SYMTYPE, "/etc/passwd", "is a link"),
    ("data/hard", tarfile.LNKTYPE, "data/ok.txt", "is a link"),
    ("data/dev", tarfile.CHRTYPE, "", "device or FIFO"),
])
def test_unsafe_members_are_refused_and_nothing_is_extracted(tmp_path, name, kind, link, message):
    archive = _tar(tmp_path, lambda tf: (_add(tf, "data/ok.txt"), _add(tf, name, kind, link)))
    with pytest.raises(UnsafeArchiveError, match=message):
        extract(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not (tmp_path / "escape.txt").exists()


def test_zip_with_dotdot_is_refused(tmp_path):
    path = tmp_path / "evil.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("../../evil.txt", "x")
    with pytest.raises(UnsafeArchiveError, match="outside the target"):
        extract(path, tmp_path / "out")
