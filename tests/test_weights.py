"""Weights registry: cache, override folder, resumable verified downloads, offline errors."""

from __future__ import annotations

import hashlib

import pytest
from typer.testing import CliRunner

from i2i_cli import weights
from i2i_cli.errors import WeightsError
from i2i_cli.main import app
from tests.http_server import serve

PAYLOAD = bytes(range(256)) * 4000


def _entry(url: str, digest: str) -> weights.WeightsEntry:
    return weights.WeightsEntry("testnet", "testnet-abc.pth", url, digest, "a test network")


@pytest.fixture
def online(monkeypatch, tmp_path):
    monkeypatch.setenv("I2I_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("I2I_OFFLINE", raising=False)
    monkeypatch.delenv("I2I_WEIGHTS_DIR", raising=False)
    yield
    weights.REGISTRY.pop("testnet", None)


def test_download_resumes_from_a_partial_file_and_verifies(online, tmp_path):
    digest = hashlib.sha256(PAYLOAD).hexdigest()
    with serve({"/w.pth": PAYLOAD}) as (base, ranges):
        weights.register(_entry(f"{base}/w.pth", digest))
        part = weights.cache_dir() / "testnet-abc.pth.part"
        part.parent.mkdir(parents=True)
        part.write_bytes(PAYLOAD[:100_000])
        resolved = weights.resolve("testnet")
    assert ranges == ["bytes=100000-"]
    assert resolved.verified and resolved.source == "download"
    assert resolved.path.read_bytes() == PAYLOAD and not part.exists()
    assert weights.resolve("testnet").source == "cache"


def test_hash_mismatch_deletes_the_file_and_says_so(online):
    with serve({"/w.pth": PAYLOAD}) as (base, _):
        weights.register(_entry(f"{base}/w.pth", "0" * 64))
        with pytest.raises(WeightsError, match="does not match"):
            weights.resolve("testnet")
    assert not list(weights.cache_dir().glob("testnet*"))


def test_offline_error_names_url_file_and_where_to_put_it(online, monkeypatch):
    weights.register(_entry("http://127.0.0.1:9/w.pth", "0" * 64))
    for offline in ("1", None):
        if offline:
            monkeypatch.setenv("I2I_OFFLINE", offline)
        else:
            monkeypatch.delenv("I2I_OFFLINE")
        with pytest.raises(WeightsError) as info:
            weights.resolve("testnet")
        message = str(info.value)
        assert "http://127.0.0.1:9/w.pth" in message and "testnet-abc.pth" in message
        assert str(weights.cache_dir()) in message and "\n" not in message


def test_override_folder_file_with_another_hash_is_used_unverified(online, tmp_path, monkeypatch):
    weights.register(_entry("http://127.0.0.1:9/w.pth", hashlib.sha256(PAYLOAD).hexdigest()))
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "testnet-abc.pth").write_bytes(b"retrained")
    monkeypatch.setenv("I2I_WEIGHTS_DIR", str(folder))
    resolved = weights.resolve("testnet")
    assert resolved.source == "override" and not resolved.verified and "differs" in resolved.note
    result = CliRunner().invoke(app, ["weights", "path", "testnet"])
    assert result.exit_code == 0 and "testnet-abc.pth" in result.output


def test_weights_list_names_every_registered_network():
    result = CliRunner().invoke(app, ["weights", "list"])
    assert result.exit_code == 0
    for name in ("vgg16", "alexnet", "inception_fid"):
        assert name in result.output
