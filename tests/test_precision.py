"""`--precision auto`: bf16 where the CPU has native bf16 (avx512_bf16 or AMX), fp32 elsewhere; what ran is
printed and recorded. The detection is mocked both ways (torch's own probes are replaced)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

import i2i_cli
from i2i_cli.engine.device import cpu_has_native_bf16, resolve_precision
from i2i_cli.main import app
from tests.run_factory import make_run

CPU = torch.device("cpu")


def _cpu_with(monkeypatch, avx512_bf16: bool, amx: bool = False) -> None:
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx, raising=False)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("runs") / "p2p", "pix2pix")


@pytest.mark.parametrize(("avx512_bf16", "amx", "expected"), [(True, False, "bf16"), (False, True, "bf16"),
                                                             (False, False, "fp32")])
def test_auto_is_bf16_only_where_the_cpu_has_it(monkeypatch, avx512_bf16, amx, expected):
    _cpu_with(monkeypatch, avx512_bf16, amx)
    assert cpu_has_native_bf16() is (expected == "bf16")
    chosen = resolve_precision("auto", CPU)
    assert (chosen.name, chosen.auto) == (expected, True)
    assert chosen.describe().startswith(f"{expected} (auto: ")
    explicit = resolve_precision("bf16", CPU)  # an explicit choice is kept whatever the CPU has, and explained
    assert explicit.name == "bf16" and ("emulated" in explicit.describe()) is (expected == "fp32")


def test_a_torch_without_the_probes_reads_as_no_native_bf16(monkeypatch):
    monkeypatch.delattr(torch.cpu, "_is_avx512_bf16_supported", raising=False)
    monkeypatch.delattr(torch.cpu, "_is_amx_tile_supported", raising=False)
    assert resolve_precision("auto", CPU).name == "fp32"


@pytest.mark.parametrize("native", [True, False])
def test_translate_and_the_api_default_to_auto_and_record_what_ran(run, tmp_path, monkeypatch, native):
    _cpu_with(monkeypatch, native)
    expected = "bf16" if native else "fp32"
    src, report = tmp_path / "in", tmp_path / "t.json"
    src.mkdir()
    Image.new("RGB", (32, 32), (10, 200, 30)).save(src / "a.png")
    result = CliRunner().invoke(app, ["translate", "--checkpoint", str(run), str(src), str(tmp_path / "out"),
                                      "--device", "cpu", "--json", str(report)])
    assert result.exit_code == 0, result.output
    assert f"{expected} (auto: " in result.output
    assert json.loads(report.read_text())["precision"] == expected

    translator = i2i_cli.load(run, device="cpu")
    assert translator.precision_ran == expected
    out = translator(np.zeros((32, 32, 3), np.uint8))
    assert out.shape == (32, 32, 3)
    assert translator.translate_folder(src, tmp_path / "api").precision == expected
    assert i2i_cli.load(run, device="cpu", precision="fp32").precision_ran == "fp32"
