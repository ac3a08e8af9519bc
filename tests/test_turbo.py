"""img2img-turbo's methods end to end as a user runs them, on a tiny random sd-turbo-layout base model:
train (CLI), exact resume, translate (CLI, with and without --caption), export to ONNX with parity, eval with
DINO-Struct; only the trained parts are saved; a missing base model is one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

pytest.importorskip("diffusers")
pytest.importorskip("peft")

from i2i_cli.engine.checkpoint import latest_checkpoint, load_for_inference, load_tensors  # noqa: E402
from i2i_cli.engine.trainer import TrainOptions, train  # noqa: E402
from i2i_cli.main import app  # noqa: E402
from tests.conftest import tiny_config  # noqa: E402
from tests.tiny_diffusion import tiny_base_model  # noqa: E402

runner = CliRunner()


def _cli(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_tensors(latest_checkpoint(run) / "weights.safetensors")


@pytest.mark.parametrize("method", ["pix2pix_turbo", "cyclegan_turbo"])
def test_resume_is_exact(method, datasets, fake_weights_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("I2I_WEIGHTS_DIR", str(fake_weights_dir))
    config = tiny_config(method)
    data = datasets["aligned" if method == "pix2pix_turbo" else "unaligned"]
    common = dict(data=data, device="cpu", log_every=1, save_every=2)
    full = train(method, config, TrainOptions(out=tmp_path / "full", steps=3, **common))

    def interrupt(event) -> None:
        if event.kind == "checkpoint" and event.step == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(method, config, TrainOptions(out=tmp_path / "part", steps=3, **common), interrupt)
    resumed = train(method, config, TrainOptions(out=tmp_path / "part", steps=3, resume=True, **common))
    a, b = _weights(tmp_path / "full"), _weights(tmp_path / "part")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert full.final_losses == resumed.final_losses
    # only what is trained is saved (LoRA, the UNet's conv_in, the skip convolutions): the base model is not
    assert all("lora" in k or "conv_in" in k or "skip_conv" in k for k in a), [k for k in a][:5]
    assert any(".unet.conv_in." in f".{k}" for k in a) and any("skip_conv_4" in k for k in a)


def test_pix2pix_turbo_through_the_cli(datasets, fake_weights_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("I2I_WEIGHTS_DIR", str(fake_weights_dir))
    run = tmp_path / "run"
    trained = _cli("train", "--model", "pix2pix_turbo", "--data", datasets["aligned"], "--out", run, "--size", "32",
                   "--steps", "2", "--device", "cpu", "--set", f"base_model={tiny_base_model()}", "--set",
                   "caption=a cat", "--set", "lora_rank_unet=4", "--set", "lambda_clipsim=0", "--set", "lambda_gan=0",
                   "--set", "batch_size=2")
    assert trained.exit_code == 0, trained.output
    src = datasets["aligned"] / "test"
    out, other = tmp_path / "out", tmp_path / "other"
    assert _cli("translate", "--checkpoint", run, src, out, "--device", "cpu").exit_code == 0
    captioned = _cli("translate", "--checkpoint", run, src, other, "--device", "cpu", "--caption", "a dog")
    assert captioned.exit_code == 0, captioned.output
    files = sorted(p.name for p in out.rglob("*.png"))
    assert files and files == sorted(p.name for p in other.rglob("*.png"))
    assert (out / files[0]).read_bytes() != (other / files[0]).read_bytes()  # the caption conditions the UNet
    # the export's parity runs in test_export.py; here: a caption for a method without text is one line
    from tests.run_factory import make_run

    plain = make_run(tmp_path / "plain")
    refused = _cli("export", "--checkpoint", plain, "--out", tmp_path / "p.onnx", "--caption", "a dog")
    assert refused.exit_code == 2 and "is not conditioned on text" in refused.output


def test_caption_for_a_method_without_text_is_one_line(tmp_path):
    from tests.run_factory import make_run

    run = make_run(tmp_path / "run")
    src = tmp_path / "in"
    src.mkdir()
    from i2i_cli.data.images import save_image

    save_image(torch.zeros(32, 32, 3, dtype=torch.uint8).numpy(), src / "a.png")
    result = _cli("translate", "--checkpoint", run, src, tmp_path / "out", "--caption", "a cat", "--device", "cpu")
    assert result.exit_code == 2 and "is not conditioned on text" in result.output
    assert "Traceback" not in result.output


def test_cyclegan_turbo_needs_its_captions_and_translates_both_ways(datasets, fake_weights_dir, tmp_path,
                                                                    monkeypatch):
    monkeypatch.setenv("I2I_WEIGHTS_DIR", str(fake_weights_dir))
    base = ["train", "--model", "cyclegan_turbo", "--data", datasets["unaligned"], "--size", "32", "--steps", "1",
            "--device", "cpu", "--set", f"base_model={tiny_base_model()}", "--set", "lora_rank_unet=4",
            "--set", "lambda_gan=0", "--set", "batch_size=1"]
    refused = _cli(*base, "--out", tmp_path / "bad")
    assert refused.exit_code == 2 and "caption_A" in refused.output and "Traceback" not in refused.output
    run = tmp_path / "run"
    assert _cli(*base, "--out", run, "--set", "caption_A=a cat", "--set", "caption_B=a dog").exit_code == 0
    loaded = load_for_inference(run, use_ema=False).method
    x = torch.rand(1, 3, 24, 40) * 2 - 1  # any size that is a multiple of 8
    assert loaded.translate(x, "AtoB").shape == x.shape and loaded.translate(x, "BtoA").shape == x.shape
    assert not torch.equal(loaded.translate(x, "AtoB"), loaded.translate(x, "BtoA"))


def test_a_missing_base_model_or_clip_file_is_one_line(datasets, tmp_path):
    base = ["train", "--model", "pix2pix_turbo", "--data", datasets["aligned"], "--steps", "1", "--device", "cpu"]
    result = _cli(*base, "--out", tmp_path / "run", "--set", f"base_model={tmp_path / 'nowhere'}",
                  "--set", "lambda_gan=0", "--set", "lambda_clipsim=0", "--set", "lambda_lpips=0")
    assert result.exit_code == 2
    message = " ".join(result.output.split())
    assert "no such base-model folder" in message and "stabilityai/sd-turbo" in message
    assert "Traceback" not in result.output
    clip = _cli(*base, "--out", tmp_path / "run2", "--set", f"base_model={tiny_base_model()}")  # GAN + CLIP on
    message = " ".join(clip.output.split())
    assert clip.exit_code == 2 and "ViT-B-32.pt" in message and "openaipublic" in message, message
    assert "Traceback" not in clip.output


def test_eval_checkpoint_scores_a_turbo_run_with_dino_struct(datasets, fake_weights_dir, tmp_path, monkeypatch):
    """`i2i eval --checkpoint` translates the test split with the run and scores it (DINO-Struct: the paper's
    structure metric, here with a tiny random ViT in place of DINO ViT-B/8)."""
    import shutil

    import torchvision

    from i2i_cli.evaluation import dino_struct
    from i2i_cli.models.networks.dino_vit import DinoViT
    from i2i_cli.weights import ResolvedWeights
    from tests.golden.record_dino_struct import DEPTH, HEADS, MLP_RATIO, PATCH, WIDTH, seeded_tiny_vit

    weights_dir = tmp_path / "weights"  # VGG16 (training's LPIPS) and AlexNet (eval's paired LPIPS), seeded
    shutil.copytree(fake_weights_dir, weights_dir)
    alexnet = torchvision.models.alexnet(weights=None).features.state_dict()
    torch.save({f"features.{k}": v for k, v in alexnet.items()}, weights_dir / "alexnet-owt-7be5be79.pth")
    monkeypatch.setenv("I2I_WEIGHTS_DIR", str(weights_dir))
    run = tmp_path / "run"
    train("pix2pix_turbo", tiny_config("pix2pix_turbo"),
          TrainOptions(data=datasets["aligned"], out=run, steps=1, device="cpu"))
    tiny = DinoViT(patch_size=PATCH, embed_dim=WIDTH, depth=DEPTH, num_heads=HEADS, mlp_ratio=MLP_RATIO).eval()
    tiny.load_state_dict(seeded_tiny_vit())
    weights = ResolvedWeights("dino_vitb8", tmp_path / "tiny.pth", "0" * 64, False, "override", "a tiny random ViT")
    monkeypatch.setattr(dino_struct, "build_dino_vitb8", lambda device, weights_dir=None: (tiny, weights))
    result = _cli("eval", "--checkpoint", run, "--metrics", "dino_struct", "--device", "cpu", "--json",
                  tmp_path / "e.json")
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "e.json").read_text())
    assert report["dino_struct"] > 0 and report["protocol"]["dino_struct"]["pairs"] == 4
    assert report["lpips"] is not None  # paired data: LPIPS to the ground truth as for pix2pix
