"""ONNX export: parity with PyTorch for every registered method, ONNX Runtime translation, bad cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from i2i_cli.data.images import load_image
from i2i_cli.engine.trainer import TrainOptions, train
from i2i_cli.export import export_onnx, read_metadata
from i2i_cli.main import app
from models import registry
from tests.conftest import tiny_config

runner = CliRunner()
EXPORTABLE = [m for m in registry.list_methods() if not registry.method_class(m).takes_style_reference]


@pytest.mark.parametrize("name", EXPORTABLE)
def test_export_matches_pytorch_for_every_method(name, datasets, fake_weights_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("I2I_WEIGHTS_DIR", str(fake_weights_dir))
    cls = registry.method_class(name)
    train(name, tiny_config(name), TrainOptions(data=datasets[cls.layout], out=tmp_path / "run", steps=1, device="cpu"))
    result = export_onnx(tmp_path / "run", tmp_path / "m.onnx")
    assert max(result.max_diff.values()) <= 1e-4
    assert len(result.max_diff) >= 2  # two sizes and batches, so the dynamic axes were exercised
    meta = read_metadata(tmp_path / "m.onnx")
    assert meta["method"] == name and meta["normalization"] == "[-1,1]" and int(meta["size_multiple"]) >= 1


def test_onnx_translation_equals_the_pytorch_path_and_keeps_odd_sizes(datasets, tmp_path):
    train("pix2pix", tiny_config("pix2pix"), TrainOptions(data=datasets["aligned"], out=tmp_path / "run", steps=1,
                                                          device="cpu"))
    export_onnx(tmp_path / "run", tmp_path / "m.onnx")
    src = tmp_path / "in"
    src.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (53, 37, 3), dtype=np.uint8)).save(src / "odd.png")
    for backend, out in (("run", "o_torch"), ("m.onnx", "o_onnx")):
        result = runner.invoke(app, ["translate", "--checkpoint", str(tmp_path / backend), str(src),
                                     str(tmp_path / out), "--device", "cpu"])
        assert result.exit_code == 0, result.output
    a = load_image(tmp_path / "o_torch" / "odd.png").astype(int)
    b = load_image(tmp_path / "o_onnx" / "odd.png").astype(int)
    assert a.shape == (53, 37, 3) and np.abs(a - b).max() <= 1


def test_onnx_without_i2i_metadata_still_translates_and_says_what_it_assumed(tmp_path):
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 3, 3, padding=1), torch.nn.Tanh())
    torch.onnx.export(net, (torch.rand(1, 3, 8, 8),), str(tmp_path / "plain.onnx"), dynamo=False,
                      input_names=["x"], dynamic_axes={"x": {0: "n", 2: "h", 3: "w"}})
    (tmp_path / "in").mkdir()
    Image.new("RGB", (21, 13), (5, 50, 200)).save(tmp_path / "in" / "a.png")
    result = runner.invoke(app, ["translate", "--checkpoint", str(tmp_path / "plain.onnx"), str(tmp_path / "in"),
                                 str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "no i2i metadata" in result.output and "[-1, 1]" in result.output
    assert load_image(tmp_path / "out" / "a.png").shape == (13, 21, 3)


def test_export_refuses_to_overwrite_and_bad_static_sizes(datasets, tmp_path):
    train("pix2pix", tiny_config("pix2pix"), TrainOptions(data=datasets["aligned"], out=tmp_path / "run", steps=1,
                                                          device="cpu"))
    (tmp_path / "m.onnx").write_text("mine")
    result = runner.invoke(app, ["export", "--checkpoint", str(tmp_path / "run"), "--out", str(tmp_path / "m.onnx")])
    assert result.exit_code == 2 and "--overwrite" in result.output
    assert (tmp_path / "m.onnx").read_text() == "mine"
    bad = runner.invoke(app, ["export", "--checkpoint", str(tmp_path / "run"), "--out", str(tmp_path / "s.onnx"),
                              "--static-size", "30", "30"])
    assert bad.exit_code == 2 and "multiples of 32" in bad.output
    ok = runner.invoke(app, ["export", "--checkpoint", str(tmp_path / "run"), "--out", str(tmp_path / "h.onnx"),
                             "--fp16"])
    assert ok.exit_code == 0, ok.output
