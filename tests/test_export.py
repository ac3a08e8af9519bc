"""ONNX export: parity with PyTorch for every registered method, ONNX Runtime translation, bad cases."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from i2i_cli.data.images import load_image
from i2i_cli.diffusion.base_model import attach_base_model
from i2i_cli.export import _Graph, _to_onnx, companion_paths, export_onnx, read_metadata
from i2i_cli.main import app
from i2i_cli.models import registry
from tests.conftest import tiny_config
from tests.run_factory import make_run

runner = CliRunner()


def _methods_by_network() -> list:
    """Every method; one whose export network is a class already covered is marked slow (same graph code).

    pix2pix's U-Net and StarGAN v2's three graphs are exported (and checked) by the tests below, so only
    CycleGAN's ResNet generator runs here by default: the dynamo exporter takes several seconds a graph."""
    seen, params = {"UnetGenerator", "Generator", "AttendedGenerator"}, []
    for name in registry.list_methods():
        cls = registry.method_class(name)
        method = cls(tiny_config(name))
        attach_base_model(method)
        network = type(method.export_module()).__name__
        params.append(pytest.param(name, marks=pytest.mark.slow) if network in seen else name)
        seen.add(network)
    return params


@pytest.mark.parametrize("name", _methods_by_network())
def test_export_matches_pytorch_for_every_method(name, tmp_path):
    run = make_run(tmp_path / "run", name)
    result = export_onnx(run, tmp_path / "m.onnx")
    assert max(result.max_diff.values()) <= 1e-4
    assert any(" 1x" in k for k in result.max_diff) and any(" 2x" in k for k in result.max_diff)  # dynamic axes
    meta = read_metadata(tmp_path / "m.onnx")
    assert meta["method"] == name and meta["normalization"] == "[-1,1]" and int(meta["size_multiple"]) >= 1
    assert [p.name for p in tmp_path.iterdir() if p.is_file()].count("m.onnx") == 1
    if registry.method_class(name).takes_style_reference:
        assert all(p.is_file() for p in companion_paths(tmp_path / "m.onnx").values())
        assert {k.split(":")[0] for k in result.max_diff} == {"generator", "style_encoder", "mapping"}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("p2p")
    data = root / "data"
    data.mkdir()
    Image.fromarray(np.random.default_rng(3).integers(0, 255, (32, 64, 3), dtype=np.uint8)).save(data / "0.png")
    run = make_run(root / "run", "pix2pix", data={"root": str(data), "layout": "aligned"})
    result = runner.invoke(app, ["export", "--checkpoint", str(run), "--out", str(root / "m.onnx")])
    assert result.exit_code == 0, result.output
    return run, root / "m.onnx", result.output


def test_export_checks_a_real_image_and_onnx_translation_equals_pytorch_at_odd_sizes(exported, tmp_path):
    run, onnx_file, output = exported
    assert "real image" in output and "parity" in output
    src = tmp_path / "in"
    src.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (53, 37, 3), dtype=np.uint8)).save(src / "odd.png")
    for backend, out in ((run, "o_torch"), (onnx_file, "o_onnx")):
        result = runner.invoke(app, ["translate", "--checkpoint", str(backend), str(src), str(tmp_path / out),
                                     "--device", "cpu"])
        assert result.exit_code == 0, result.output
    assert "ONNX Runtime on CPUExecutionProvider" in result.output
    a = load_image(tmp_path / "o_torch" / "odd.png").astype(int)
    b = load_image(tmp_path / "o_onnx" / "odd.png").astype(int)
    assert a.shape == (53, 37, 3) and np.abs(a - b).max() <= 1


def test_export_refuses_overwrite_and_bad_sizes(exported, tmp_path):
    run, _, _ = exported
    (tmp_path / "m.onnx").write_text("mine")
    result = runner.invoke(app, ["export", "--checkpoint", str(run), "--out", str(tmp_path / "m.onnx")])
    assert result.exit_code == 2 and "--overwrite" in result.output
    assert (tmp_path / "m.onnx").read_text() == "mine"
    bad = runner.invoke(app, ["export", "--checkpoint", str(run), "--out", str(tmp_path / "s.onnx"),
                              "--static-size", "30", "30"])
    assert bad.exit_code == 2 and "multiples of 32" in bad.output


@pytest.mark.slow
def test_failed_parity_leaves_nothing(exported, tmp_path, monkeypatch):
    run, _, _ = exported
    (tmp_path / "m.onnx").write_text("mine")
    monkeypatch.setattr("i2i_cli.export.TOLERANCE", {False: 0.0, True: 0.0})
    failed = runner.invoke(app, ["export", "--checkpoint", str(run), "--out", str(tmp_path / "h.onnx"), "--fp16",
                                 "--static-size", "32", "64"])
    assert failed.exit_code == 1 and "differs from PyTorch by" in failed.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]  # no file, no temporary


@pytest.mark.slow
def test_fp16_export_within_its_tolerance(exported, tmp_path):
    run, _, _ = exported
    result = export_onnx(run, tmp_path / "h.onnx", fp16=True)
    assert 0 < max(result.max_diff.values()) <= 1e-2 and read_metadata(tmp_path / "h.onnx")["precision"] == "fp16"


def test_an_operator_onnx_cannot_express_is_named():
    class Eig(torch.nn.Module):
        def forward(self, x):
            return x + torch.linalg.eigvals(x[:, 0, :4, :4]).real.sum()

    graph = _Graph("generator", Eig(), (torch.rand(2, 3, 8, 8),), ["image"], [{}], {})
    with pytest.raises(Exception, match="cannot express .*aten.linalg_eig"):
        _to_onnx(graph, "test", 18, False)


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


def test_stargan_onnx_reference_and_latent_guided_equal_pytorch(tmp_path):
    run = make_run(tmp_path / "run", "starganv2")
    export_onnx(run, tmp_path / "s.onnx")
    src, refs = tmp_path / "in", tmp_path / "refs" / "dog"
    src.mkdir()
    refs.mkdir(parents=True)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (40, 36, 3), dtype=np.uint8)).save(src / "x.png")
    Image.fromarray(rng.integers(0, 255, (48, 48, 3), dtype=np.uint8)).save(refs / "r.png")
    for model, tag in ((run, "t"), (tmp_path / "s.onnx", "o")):
        # fp32 both ways (a CPU with native bf16 would translate the run in bf16 under --precision auto)
        by_ref = runner.invoke(app, ["translate", "-c", str(model), str(src), str(tmp_path / f"{tag}_ref"),
                                     "--style-ref", str(refs / "r.png"), "--precision", "fp32"])  # domain: folder
        latent = runner.invoke(app, ["translate", "-c", str(model), str(src), str(tmp_path / f"{tag}_z"),
                                     "--domain", "cat", "--num-styles", "2", "--seed", "7", "--precision", "fp32"])
        assert by_ref.exit_code == 0 and latent.exit_code == 0, by_ref.output + latent.output
    for name in ("t_ref/x.png", "t_z/x__cat0.png", "t_z/x__cat1.png"):
        a = load_image(tmp_path / name).astype(int)
        b = load_image(tmp_path / name.replace("t_", "o_", 1)).astype(int)
        assert a.shape == (40, 36, 3) and np.abs(a - b).max() <= 1, name
    assert np.abs(load_image(tmp_path / "o_z/x__cat0.png").astype(int)
                  - load_image(tmp_path / "o_z/x__cat1.png").astype(int)).max() > 0  # two styles differ
    if importlib.util.find_spec("openvino") is not None:  # the generator and its two companions in OpenVINO bf16
        bf16 = runner.invoke(app, ["translate", "-c", str(tmp_path / "s.onnx"), str(src), str(tmp_path / "b_ref"),
                                   "--style-ref", str(refs / "r.png"), "--precision", "bf16", "--device", "cpu"])
        assert bf16.exit_code == 0 and "OpenVINO" in bf16.output, bf16.output
        diff = load_image(tmp_path / "b_ref/x.png").astype(float) - load_image(tmp_path / "o_ref/x.png")
        assert 10 * np.log10(255.0**2 / max(np.mean(diff**2), 1e-12)) >= 35
    unknown = runner.invoke(app, ["translate", "-c", str(tmp_path / "s.onnx"), str(src), str(tmp_path / "u"),
                                  "--domain", "moon"])
    assert unknown.exit_code == 2 and "cat, dog, wild" in unknown.output
    plain = runner.invoke(app, ["translate", "-c", str(tmp_path / "s.onnx"), str(src), str(tmp_path / "p")])
    assert plain.exit_code == 2 and "--style-ref" in plain.output


def test_a_static_size_onnx_file_names_images_of_other_sizes_and_tiles_at_its_size(tmp_path):
    import onnxruntime as ort
    from onnx import TensorProto, helper

    from i2i_cli.inference import OnnxTranslator, TranslateOptions, translate_folder

    image = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, 32, 32])  # as --static-size 32 32
    out = helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", 3, 32, 32])
    graph = helper.make_graph([helper.make_node("Neg", ["image"], ["out"])], "negate", [image], [out])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    translator = OnnxTranslator(tmp_path / "m.onnx", session=session, metadata={"i2i_version": "test"})
    assert translator.static_size == (32, 32)
    src = tmp_path / "in"
    src.mkdir()
    for name, (h, w) in {"fits": (32, 32), "larger": (48, 80), "smaller": (20, 20)}.items():
        Image.fromarray(np.full((h, w, 3), 200, dtype=np.uint8)).save(src / f"{name}.png")
    result = translate_folder(src, tmp_path / "out", translator, TranslateOptions(device="cpu"))
    assert [p.name for p in result.written] == ["fits.png"]
    assert sorted(Path(f).name for f, _ in result.bad) == ["larger.png", "smaller.png"]
    assert all("--static-size" in reason for _, reason in result.bad)
    assert load_image(tmp_path / "out" / "fits.png")[0, 0, 0] == 55  # -x of 200 in [-1, 1] is 55
    tiled = translate_folder(src, tmp_path / "tiled", translator, TranslateOptions(device="cpu", tile=32, overlap=8))
    assert sorted(p.name for p in tiled.written) == ["fits.png", "larger.png"]  # 48x80 in 32x32 tiles
    assert load_image(tmp_path / "tiled" / "larger.png").shape == (48, 80, 3)


def test_the_real_image_check_takes_a_readable_source_image_of_the_dataset(tmp_path):
    from i2i_cli.engine.checkpoint import load_for_inference
    from i2i_cli.export import _real_input

    data = tmp_path / "data"
    for folder, value in (("trainA", 10), ("trainB", 240)):
        (data / folder).mkdir(parents=True)
        Image.fromarray(np.full((16, 16, 3), value, dtype=np.uint8)).save(data / folder / "b.png")
    (data / "trainA" / "a.png").write_bytes(b"not a png")  # sorts first, unreadable
    (data / "0_notes.png").write_bytes(b"")  # junk beside the splits
    run = make_run(tmp_path / "run", "cyclegan", data={"root": str(data), "layout": "unaligned"})
    loaded = load_for_inference(run)
    a, b = _real_input(loaded, (8, 8), "AtoB"), _real_input(loaded, (8, 8), "BtoA")
    assert a is not None and b is not None and a.shape == (1, 3, 8, 8)
    assert torch.allclose(a, torch.full_like(a, 10 / 127.5 - 1)) and torch.allclose(b, torch.full_like(b, 240 / 127.5 - 1))
