"""pix2pix end to end through the trainer and `i2i train`: it learns, resumes exactly, refuses bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from i2i_cli.data.images import load_image, to_tensor
from i2i_cli.engine.checkpoint import latest_checkpoint, load_for_inference, load_tensors
from i2i_cli.engine.trainer import TrainOptions, train
from i2i_cli.main import app
from tests.conftest import tiny_config

runner = CliRunner()


def _l1_to_targets(method, data: Path) -> float:
    files = sorted((data / "train").glob("*.png"))
    pairs = [to_tensor(load_image(f)) for f in files]
    a = torch.stack([p[:, :, : p.shape[2] // 2] for p in pairs])
    b = torch.stack([p[:, :, p.shape[2] // 2 :] for p in pairs])
    a = torch.nn.functional.interpolate(a, size=32, mode="bilinear", align_corners=False)
    b = torch.nn.functional.interpolate(b, size=32, mode="bilinear", align_corners=False)
    with torch.no_grad():
        return float((method.translate(a) - b).abs().mean())


def test_pix2pix_learns_the_mapping(datasets, tmp_path):
    config = tiny_config("pix2pix", ngf=16, ndf=16, batch_size=4, load_size=0)
    from i2i_cli.engine.trainer import _seed_everything
    from i2i_cli.models.methods.pix2pix import Pix2Pix

    _seed_everything(0)
    before = _l1_to_targets(Pix2Pix(config), datasets["aligned"])
    result = train("pix2pix", config, TrainOptions(data=datasets["aligned"], out=tmp_path / "run", steps=80,
                                                   device="cpu", save_every=80))
    after = _l1_to_targets(result.method.eval(), datasets["aligned"])
    assert before > 0.3
    assert after < 0.6 * before, (before, after)


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_tensors(latest_checkpoint(run) / "weights.safetensors")


def test_resume_is_exact(datasets, tmp_path):
    config = tiny_config("pix2pix")
    common = dict(data=datasets["aligned"], device="cpu", log_every=1, save_every=3)
    full = train("pix2pix", config, TrainOptions(out=tmp_path / "full", steps=6, **common))

    def interrupt_after_first_checkpoint(event) -> None:
        if event.kind == "checkpoint" and event.step == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train("pix2pix", config, TrainOptions(out=tmp_path / "part", steps=6, **common), interrupt_after_first_checkpoint)
    resumed = train("pix2pix", config, TrainOptions(out=tmp_path / "part", steps=6, resume=True, **common))
    a, b = _weights(tmp_path / "full"), _weights(tmp_path / "part")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert full.final_losses == resumed.final_losses
    steps = [json.loads(line)["step"] for line in (tmp_path / "part" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]


def _cli(*args: str):
    return runner.invoke(app, list(args))


def test_train_without_data_says_what_to_pass():
    result = _cli("train")
    assert result.exit_code == 2
    assert "--data" in result.output and "i2i demo" in result.output


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--model", "nope"], "unknown method 'nope'"),
        (["--set", "lambda_l1=3"], "did you mean lambda_L1"),
        (["--set", "lambda_L1=abc"], "expected float"),
        (["--direction", "sideways"], "choose AtoB or BtoA"),
    ],
)
def test_bad_options_are_one_line_errors(args, expected, datasets, tmp_path):
    base = ["train", "--model", "pix2pix", "--data", str(datasets["aligned"]), "--out", str(tmp_path / "r")]
    result = _cli(*base, *args)
    assert result.exit_code == 2, result.output
    assert expected in result.output
    assert "Traceback" not in result.output


def test_missing_empty_and_unknown_data_folders(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "odd" / "stuff").mkdir(parents=True)
    (tmp_path / "odd" / "stuff" / "notes.txt").write_text("hi")
    for folder, expected in [("missing", "no such folder"), ("empty", "no images in a known layout"),
                             ("odd", "no images in a known layout")]:
        result = _cli("train", "--model", "pix2pix", "--data", str(tmp_path / folder), "--out", str(tmp_path / "r"))
        assert result.exit_code == 2
        assert expected in result.output


def test_wrong_layout_for_the_method(datasets, tmp_path):
    result = _cli("train", "--model", "pix2pix", "--data", str(datasets["unaligned"]), "--out", str(tmp_path / "r"))
    assert result.exit_code == 2
    assert "trains on aligned data" in result.output


def test_existing_out_is_refused_then_resumed_or_overwritten(datasets, tmp_path):
    run = tmp_path / "run"
    base = ["train", "--model", "pix2pix", "--data", str(datasets["aligned"]), "--out", str(run), "--size", "32",
            "--set", "ngf=8", "--set", "ndf=8", "--steps", "2", "--device", "cpu"]
    assert _cli(*base).exit_code == 0
    again = _cli(*base)
    assert again.exit_code == 2 and "--resume" in again.output
    different = _cli(*base[:-4], "--steps", "4", "--device", "cpu", "--set", "lambda_L1=5", "--resume")
    assert different.exit_code == 2 and "lambda_L1" in different.output
    assert _cli(*base[:-4], "--steps", "4", "--device", "cpu", "--resume").exit_code == 0
    assert json.loads((run / "latest.json").read_text())["step"] == 4
    alone = _cli("train", "--out", str(run), "--resume", "--steps", "5", "--device", "cpu")  # method, data, options saved
    assert alone.exit_code == 0, alone.output
    assert json.loads((run / "latest.json").read_text())["step"] == 5
    # interrupted after step 4's checkpoint: a bare --resume continues to the planned 5 steps
    (run / "latest.json").write_text(json.dumps({"step": 4, "dir": "checkpoints/step_00000004"}))
    assert _cli("train", "--out", str(run), "--resume", "--device", "cpu").exit_code == 0
    assert json.loads((run / "latest.json").read_text())["step"] == 5
    assert json.loads((run / "config.json").read_text())["train"]["total_steps"] == 5
    assert _cli(*base, "--overwrite").exit_code == 0
    assert json.loads((run / "latest.json").read_text())["step"] == 2

    user_folder = tmp_path / "mine"
    user_folder.mkdir()
    (user_folder / "thesis.tex").write_text("precious")
    refused = _cli(*base[:5], "--out", str(user_folder), *base[7:])
    assert refused.exit_code == 2 and "not an i2i run" in refused.output
    assert (user_folder / "thesis.tex").read_text() == "precious"


def test_bad_training_images_are_skipped_then_refused_past_one_percent(tmp_path):
    from i2i_cli.data.synth import synthesize

    data = synthesize("scenes", tmp_path / "d", "aligned", size=32, n_train=120, n_test=0).root
    (data / "train" / "00003.png").write_bytes(b"")
    config = tiny_config("pix2pix")
    result = train("pix2pix", config, TrainOptions(data=data, out=tmp_path / "ok", steps=60, device="cpu"))
    assert result.bad_files and "00003.png" in result.bad_files[0]
    for i in (5, 7):
        (data / "train" / f"{i:05d}.png").write_text("not an image")
    from i2i_cli.errors import DataError

    with pytest.raises(DataError, match="more than 1%"):
        train("pix2pix", config, TrainOptions(data=data, out=tmp_path / "bad", steps=60, device="cpu"))


def test_translating_the_saved_run_reproduces_the_in_memory_model(datasets, tmp_path):
    config = tiny_config("pix2pix")
    result = train("pix2pix", config, TrainOptions(data=datasets["aligned"], out=tmp_path / "r", steps=2, device="cpu"))
    loaded = load_for_inference(tmp_path / "r")
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    assert torch.allclose(loaded.method.translate(x), result.method.eval().translate(x), atol=1e-6)
    assert loaded.step == 2


def test_cyclegan_resume_is_exact_including_its_image_pools(datasets, tmp_path):
    config = tiny_config("cyclegan", pool_size=3)
    common = dict(data=datasets["unaligned"], device="cpu", save_every=3)
    train("cyclegan", config, TrainOptions(out=tmp_path / "full", steps=6, **common))

    def stop(event) -> None:
        if event.kind == "checkpoint" and event.step == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train("cyclegan", config, TrainOptions(out=tmp_path / "part", steps=6, **common), stop)
    train("cyclegan", config, TrainOptions(out=tmp_path / "part", steps=6, resume=True, **common))
    a, b = _weights(tmp_path / "full"), _weights(tmp_path / "part")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_streamed_safetensors_reads_back_in_safetensors_own_reader(tmp_path: Path) -> None:
    """The checkpoint writer streams the safetensors format itself: safetensors must read every dtype, shape,
    view and shared tensor back bit for bit, with the metadata, and the file follows the umask."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    from i2i_cli.engine.checkpoint import save_tensors

    base = torch.randn(6, 5, dtype=torch.float64)
    tensors = {
        "conv.weight": torch.randn(4, 3, 3, 3), "half": torch.randn(7).half(), "bf": torch.randn(3, 2).bfloat16(),
        "steps": torch.tensor(12), "mask": torch.tensor([True, False, True]), "codes": torch.arange(5, dtype=torch.int8),
        "ids": torch.arange(3, dtype=torch.int64), "empty": torch.zeros(0, 4), "transposed": base.t(),
        "shared_a": base, "shared_b": base[1:3],
    }
    path = tmp_path / "w.safetensors"
    save_tensors(path, tensors, {"format": "pt", "step": "3"})
    loaded = load_file(str(path))
    assert set(loaded) == set(tensors)
    for name, tensor in tensors.items():
        assert loaded[name].dtype == tensor.dtype and loaded[name].shape == tensor.shape, name
        assert torch.equal(loaded[name], tensor), name
    with safe_open(str(path), framework="pt") as handle:
        assert handle.metadata() == {"format": "pt", "step": "3"}
    assert path.stat().st_mode & 0o777 == 0o666 & ~_umask()


def _umask() -> int:
    import os

    current = os.umask(0)
    os.umask(current)
    return current
