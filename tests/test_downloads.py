"""Dataset downloads from a loopback server: resume, layout, corrupt archives, unsafe members refused."""

from __future__ import annotations

import io
import json
import tarfile
import zipfile

import pytest
from PIL import Image
from typer.testing import CliRunner

from i2i_cli.archive import UnsafeArchiveError, extract
from i2i_cli.data.layouts import detect_layout
from i2i_cli.datasets_download import download_dataset
from i2i_cli.errors import I2IError
from i2i_cli.main import app
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


def _pix2pix_tar_gz() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tf:
        for split in ("train", "val", "test"):
            for i in range(2):
                data = _png()
                info = tarfile.TarInfo(f"facades/{split}/{i}.png")
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_pix2pix_tar_gz_is_laid_out_for_training_and_the_archive_kept_on_request(tmp_path):
    archive = _pix2pix_tar_gz()
    with serve({"/facades.tar.gz": archive}) as (base, ranges):
        result = download_dataset("facades", tmp_path, url=f"{base}/facades.tar.gz", keep_archive=True)
    assert ranges == []
    assert detect_layout(tmp_path / "facades").kind == "aligned" == result.detected
    assert result.counts == {"train": {"AB": 2}, "val": {"AB": 2}, "test": {"AB": 2}}
    assert (tmp_path / "facades.tar.gz").read_bytes() == archive
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left


@pytest.mark.parametrize("body, name", [(b"PK\x03\x04 this is not a zip", "bad.zip"), (None, "cut.tar.gz")])
def test_corrupt_or_truncated_archive_is_a_clear_error_and_kept_for_inspection(tmp_path, body, name):
    body = _pix2pix_tar_gz()[:-200] if body is None else body  # a download cut short
    dataset = "horse2zebra" if name.endswith(".zip") else "facades"
    with serve({f"/{name}": body}) as (base, _):
        result = CliRunner().invoke(app, ["data", "download", dataset, "--root", str(tmp_path), "--url",
                                          f"{base}/{name}"])
    assert result.exit_code == 2 and "corrupt or unreadable archive" in result.output, result.output
    assert len(result.output.strip().splitlines()[-1]) > 0 and "Traceback" not in result.output
    assert not (tmp_path / dataset).exists()
    assert [p.name for p in tmp_path.iterdir()] == [f"{dataset}{'.zip' if name.endswith('.zip') else '.tar.gz'}"]


def test_manual_dataset_prints_the_steps(tmp_path):
    result = CliRunner().invoke(app, ["data", "download", "cityscapes", "--root", str(tmp_path)])
    assert result.exit_code == 2 and "gtFine_trainvaltest.zip" in result.output


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
    ("data/fifo", tarfile.FIFOTYPE, "", "device or FIFO"),
])
def test_unsafe_members_are_refused_and_nothing_is_extracted(tmp_path, name, kind, link, message):
    archive = _tar(tmp_path, lambda tf: (_add(tf, "data/ok.txt"), _add(tf, name, kind, link)))
    with pytest.raises(UnsafeArchiveError, match=message):
        extract(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not (tmp_path / "escape.txt").exists()


@pytest.mark.parametrize("name, mode, message", [
    ("../../evil.txt", 0o100644, "outside the target"),
    ("/tmp/evil.txt", 0o100644, "absolute path"),
    ("C:/evil.txt", 0o100644, "absolute path"),
    ("data/link", 0o120777, "symbolic link"),
    ("data/fifo", 0o010644, "device or FIFO"),
])
def test_unsafe_zip_members_are_refused_and_nothing_is_extracted(tmp_path, name, mode, message):
    path = tmp_path / "evil.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("data/ok.txt", "x")
        info = zipfile.ZipInfo(name)
        info.external_attr = mode << 16
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(UnsafeArchiveError, match=message):
        extract(path, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evil.zip"]


def test_a_failing_layout_step_leaves_no_target(tmp_path):
    path = tmp_path / "ok.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("data/ok.txt", "x")

    def finish(folder):
        raise I2IError("layout step failed")

    with pytest.raises(I2IError, match="layout step failed"):
        extract(path, tmp_path / "out", finish=finish)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok.zip"]


def test_transient_failures_are_retried_with_backoff_resuming_the_part_file(tmp_path, monkeypatch):
    from i2i_cli import download as dl

    waits, notices = [], []
    monkeypatch.setattr(dl.time, "sleep", waits.append)
    payload = bytes(range(256)) * 100
    with serve({"/f.bin": payload}, failures={"/f.bin": 2}) as (base, _):
        path = dl.download(f"{base}/f.bin", tmp_path / "f.bin", notice=notices.append)
    assert path.read_bytes() == payload
    assert waits == [dl.BACKOFF_S, 2 * dl.BACKOFF_S]  # exponential backoff between the three attempts
    assert len(notices) == 2 and "HTTP 503" in notices[0] and "attempt 2 of 3" in notices[0]
    with serve({}, failures={"/g.bin": 5}) as (base, _), pytest.raises(dl.DownloadError, match="after 3 attempts"):
        dl.download(f"{base}/g.bin", tmp_path / "g.bin")


def test_a_failing_primary_falls_back_to_the_mirror_by_itself(tmp_path, monkeypatch):
    from i2i_cli import datasets_download as dd
    from i2i_cli import download as dl

    monkeypatch.setattr(dl.time, "sleep", lambda s: None)
    archive = _cyclegan_zip()
    with serve({"/mirror/h2z.zip": archive}) as (base, _):
        entry = dd.DatasetEntry("h2z_test", f"{base}/gone/h2z.zip", "unaligned", "test", "test",
                                mirror=f"{base}/mirror/h2z.zip")
        monkeypatch.setitem(dd.DATASETS, "h2z_test", entry)
        # https is tried first (this server speaks only http), then the URL as given (404), then the mirror
        assert entry.urls() == [f"https{base[4:]}/gone/h2z.zip", f"{base}/gone/h2z.zip", f"{base}/mirror/h2z.zip"]
        notices: list[str] = []
        result = download_dataset("h2z_test", tmp_path, notice=notices.append)
    assert detect_layout(result.root).kind == "unaligned"
    assert json.loads((result.root / ".i2i-source.json").read_text())["url"] == f"{base}/mirror/h2z.zip"
    assert any("HTTP 404" in n and "trying " + f"{base}/mirror/h2z.zip" in n for n in notices), notices


def test_dataset_urls_prefer_https():
    from i2i_cli.datasets_download import DATASETS

    for entry in DATASETS.values():
        if not entry.manual:
            assert entry.urls()[0].startswith("https://"), entry.name
