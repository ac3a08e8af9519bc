"""`i2i export --precision int8`: calibrated on images, quality against fp32 measured on held-out images and
recorded; under the bound it is refused with the figures and nothing is written."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from i2i_cli.export import read_metadata
from i2i_cli.main import app
from tests.run_factory import make_run

runner = CliRunner()


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("int8")
    run = make_run(root / "run", "pix2pix")
    images = root / "images"
    images.mkdir()
    ramp = np.linspace(0, 255, 32, dtype=np.float32)
    for i in range(4):  # smooth photos-like gradients, not noise
        array = np.stack([np.add.outer(ramp, ramp * (i + 1) / 4) / 2, np.tile(ramp, (32, 1)),
                          np.full((32, 32), 60.0 * i)], axis=-1)
        Image.fromarray(array.clip(0, 255).astype(np.uint8)).save(images / f"{i}.png")
    return run, images


def test_int8_is_measured_on_held_out_images_and_the_figures_are_recorded(setup, tmp_path):
    run, images = setup
    out, report = tmp_path / "m.onnx", tmp_path / "r.json"
    result = runner.invoke(app, ["export", "--checkpoint", str(run), "--out", str(out), "--precision", "int8",
                                 "--calibrate", str(images), "--allow-lossy", "--min-speedup", "0", "--json", str(report)])
    assert result.exit_code == 0, result.output
    quality = json.loads(read_metadata(out)["int8_quality"])
    assert read_metadata(out)["precision"] == "int8"
    assert (quality["calibration_images"], quality["held_out_images"]) == (2, 2)
    assert quality["psnr_db"] > 0 and quality["fp32_ms"] > 0 and quality["int8_ms"] > 0
    assert "InstanceNormalization" in quality["float_ops"]  # pix2pix's U-Net: norms between dequantize and quantize
    assert "LPIPS not measured" in quality["note"]  # the tests are offline: no AlexNet weights
    assert json.loads(report.read_text())["quality"]["psnr_db"] == quality["psnr_db"]
    assert "PSNR" in result.output
    translated = runner.invoke(app, ["translate", "--checkpoint", str(out), str(images), str(tmp_path / "t"),
                                     "--device", "cpu"])
    assert translated.exit_code == 0, translated.output
    assert "int8" in translated.output  # what ran: the exported file's precision


def test_int8_under_the_bound_is_refused_with_the_figures_and_bf16_is_explained(setup, tmp_path, monkeypatch):
    run, images = setup
    monkeypatch.setattr("i2i_cli.quantization.int8.MIN_PSNR", 1000.0)
    out = tmp_path / "m.onnx"
    refused = runner.invoke(app, ["export", "--checkpoint", str(run), "--out", str(out), "--precision", "int8",
                                  "--calibrate", str(images)])
    assert refused.exit_code == 1 and "dB PSNR" in refused.output and "--allow-lossy" in refused.output
    assert not out.exists() and not list(tmp_path.iterdir())
    bf16 = runner.invoke(app, ["export", "--checkpoint", str(run), "--out", str(out), "--precision", "bf16"])
    assert bf16.exit_code == 2 and "bf16" in bf16.output


def test_int8_slower_than_the_bar_is_refused_with_its_figures(setup, tmp_path):
    """An int8 file that does not run --min-speedup times fp32's speed (default 2x) is refused: the figures, the
    layers left in float and the way out in one line, nothing written."""
    run, images = setup
    out = tmp_path / "m.onnx"
    refused = runner.invoke(app, ["export", "--checkpoint", str(run), "--out", str(out), "--precision", "int8",
                                  "--calibrate", str(images), "--allow-lossy", "--min-speedup", "1000"])
    assert refused.exit_code == 1, refused.output
    line = " ".join(refused.output.split())
    assert "x fp32's speed" in line and "fp32 per 32 px image" in line and "InstanceNormalization" in line
    assert "--min-speedup 0" in line and "Traceback" not in refused.output
    assert not out.exists() and not list(tmp_path.iterdir())
    negative = runner.invoke(app, ["export", "--checkpoint", str(run), "--out", str(out), "--precision", "int8",
                                   "--min-speedup", "-1"])
    assert negative.exit_code == 2 and "--min-speedup" in negative.output


def _png_arrays(folder):
    return {f.name: np.asarray(Image.open(f)).astype(np.float64) for f in sorted(folder.rglob("*.png"))}


def test_openvino_runs_the_same_onnx_files(setup, tmp_path):
    """--runtime openvino runs an .onnx file in OpenVINO on the CPU: an fp32 export gives ONNX Runtime's outputs
    (within a level), and `auto` picks OpenVINO for an int8 file (what the export's figures measured)."""
    pytest.importorskip("openvino")
    run, images = setup
    fp32 = tmp_path / "f.onnx"
    assert runner.invoke(app, ["export", "--checkpoint", str(run), "--out", str(fp32)]).exit_code == 0
    outputs = {}
    for runtime in ("onnxruntime", "openvino"):
        result = runner.invoke(app, ["translate", "--checkpoint", str(fp32), str(images), str(tmp_path / runtime),
                                     "--device", "cpu", "--runtime", runtime])
        assert result.exit_code == 0, result.output
        outputs[runtime] = _png_arrays(tmp_path / runtime)
    assert "OpenVINO (CPU)" in result.output
    assert len(outputs["openvino"]) == 4
    for name, image in outputs["openvino"].items():
        assert np.abs(image - outputs["onnxruntime"][name]).max() <= 1, name

    int8 = tmp_path / "q.onnx"
    exported = runner.invoke(app, ["export", "--checkpoint", str(run), "--out", str(int8), "--precision", "int8",
                                   "--calibrate", str(images), "--allow-lossy", "--min-speedup", "0"])
    assert exported.exit_code == 0, exported.output
    quality = json.loads(read_metadata(int8)["int8_quality"])
    assert quality["runtime"] == "openvino" and set(quality["int8_ms_by_runtime"]) == {"onnxruntime", "openvino"}
    auto = runner.invoke(app, ["translate", "--checkpoint", str(int8), str(images), str(tmp_path / "auto"),
                               "--device", "cpu"])
    assert auto.exit_code == 0 and "OpenVINO (CPU), int8" in " ".join(auto.output.split()), auto.output


def test_runtime_errors_name_the_fix(setup, tmp_path, monkeypatch):
    run, images = setup
    on_run = runner.invoke(app, ["translate", "--checkpoint", str(run), str(images), str(tmp_path / "o"),
                                 "--runtime", "openvino"])
    assert on_run.exit_code == 2 and "runs exported .onnx files" in on_run.output
    fp32 = tmp_path / "f.onnx"
    assert runner.invoke(app, ["export", "--checkpoint", str(run), "--out", str(fp32)]).exit_code == 0
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "openvino" else real(name, *a))
    missing = runner.invoke(app, ["translate", "--checkpoint", str(fp32), str(images), str(tmp_path / "o"),
                                  "--runtime", "openvino", "--device", "cpu"])
    assert missing.exit_code == 2 and "pip install 'i2i[openvino]'" in missing.output
    assert not (tmp_path / "o").exists()


def test_bf16_runs_an_fp32_file_in_openvino_and_says_so(setup, tmp_path, monkeypatch):
    """--precision bf16 on an fp32 .onnx file runs its float layers in bf16 in OpenVINO (ONNX Runtime has no bf16
    convolutions for the CPU): what ran is printed and recorded, the images stay within 40 dB of fp32's, and
    what cannot run that way is refused in one line before any work."""
    pytest.importorskip("openvino")
    from i2i_cli import Translator
    from i2i_cli.inference.openvino_runtime import native_bf16

    run, images = setup
    fp32 = tmp_path / "f.onnx"
    assert runner.invoke(app, ["export", "--checkpoint", str(run), "--out", str(fp32)]).exit_code == 0
    ran = "bf16" if native_bf16() else "fp32"  # OpenVINO runs the bf16 hint in f32 where the CPU lacks bf16
    outputs = {}
    for precision in ("fp32", "bf16"):
        report = tmp_path / f"{precision}.json"
        result = runner.invoke(app, ["translate", "--checkpoint", str(fp32), str(images), str(tmp_path / precision),
                                     "--device", "cpu", "--precision", precision, "--json", str(report)])
        assert result.exit_code == 0, result.output
        outputs[precision] = _png_arrays(tmp_path / precision)
    line = " ".join(result.output.split())
    assert "OpenVINO (CPU)" in line and json.loads(report.read_text())["precision"] == ran
    assert ("bf16 (OpenVINO, from the fp32 file)" in line) == (ran == "bf16")
    assert len(outputs["bf16"]) == 4
    for name, image in outputs["bf16"].items():
        mse = np.mean((image - outputs["fp32"][name]) ** 2)
        assert mse == 0 or 10 * np.log10(255.0**2 / mse) >= 40, name
    assert Translator(fp32, device="cpu", precision="bf16").precision_ran == ran
    if importlib.util.find_spec("litserve") is not None:  # i2i serve: its metadata says what its worker runs
        from i2i_cli.serve import ServeOptions, Translators, load_facts

        assert load_facts(str(fp32), ServeOptions(device="cpu", precision="bf16"))[1].precision == ran
        assert Translators(str(fp32), "cpu", "bf16").default.precision_ran == ran

    wrong_runtime = runner.invoke(app, ["translate", "--checkpoint", str(fp32), str(images), str(tmp_path / "o"),
                                        "--device", "cpu", "--precision", "bf16", "--runtime", "onnxruntime"])
    assert wrong_runtime.exit_code == 2 and "--runtime openvino" in wrong_runtime.output
    half = runner.invoke(app, ["translate", "--checkpoint", str(fp32), str(images), str(tmp_path / "o"),
                               "--device", "cpu", "--precision", "fp16"])
    assert half.exit_code == 2 and "exported in" in half.output
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "openvino" else real(name, *a))
    missing = runner.invoke(app, ["translate", "--checkpoint", str(fp32), str(images), str(tmp_path / "o"),
                                  "--device", "cpu", "--precision", "bf16"])
    assert missing.exit_code == 2 and "pip install 'i2i[openvino]'" in missing.output
    assert not (tmp_path / "o").exists()
