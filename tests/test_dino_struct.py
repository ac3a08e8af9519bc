"""`i2i eval --metrics dino_struct`: pairs by name, lists what it could not score, refuses missing weights in
one line. The numbers themselves are pinned to img2img-turbo's function in tests/golden/test_golden_dino_struct.py;
here a tiny random ViT stands in for ViT-B/8 (whose 330 MB of weights cannot be downloaded in CI)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from i2i_cli.data.images import load_image, save_image
from i2i_cli.evaluation import dino_struct
from i2i_cli.main import app
from i2i_cli.models.networks.dino_vit import DinoViT
from i2i_cli.weights import ResolvedWeights
from tests.golden.record_dino_struct import DEPTH, HEADS, MLP_RATIO, PATCH, WIDTH, seeded_tiny_vit


def _folders(tmp_path: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)  # square: 224 x 224, the fewest tokens
    save_image(image, tmp_path / "inputs" / "a.png")
    save_image(np.clip(image.astype(int) + 40, 0, 255).astype(np.uint8), tmp_path / "outputs" / "a.png")
    save_image(image, tmp_path / "outputs" / "stray.png")  # no input of that name
    (tmp_path / "inputs" / "b.png").write_bytes(b"not a png")
    save_image(image, tmp_path / "outputs" / "b.png")
    return tmp_path / "inputs", tmp_path / "outputs"


def _eval(real: Path, fake: Path) -> object:
    return CliRunner().invoke(app, ["eval", "--real", str(real), "--fake", str(fake), "--metrics", "dino_struct",
                                    "--device", "cpu", "--json", "-"])


def test_missing_weights_are_one_line_naming_the_official_url(tmp_path: Path) -> None:
    real, fake = _folders(tmp_path)
    result = _eval(real, fake)
    assert result.exit_code == 2
    message = " ".join(result.output.split())
    assert "dino_vitbase8_pretrain.pth" in message
    assert "https://dl.fbaipublicfiles.com/dino/dino_vitbase8_pretrain/dino_vitbase8_pretrain.pth" in message
    assert "Traceback" not in result.output


def test_a_file_that_is_not_vit_b8_is_refused_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real, fake = _folders(tmp_path)
    torch.save({k: v.float() for k, v in seeded_tiny_vit().items()}, tmp_path / "dino_vitbase8_pretrain.pth")
    monkeypatch.setenv("I2I_WEIGHTS_DIR", str(tmp_path))
    result = _eval(real, fake)
    assert result.exit_code == 2
    assert "does not fit DINO ViT-B/8" in " ".join(result.output.split())


def test_outputs_are_scored_against_their_namesake_inputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real, fake = _folders(tmp_path)
    tiny = DinoViT(patch_size=PATCH, embed_dim=WIDTH, depth=DEPTH, num_heads=HEADS, mlp_ratio=MLP_RATIO).eval()
    tiny.load_state_dict(seeded_tiny_vit())
    weights = ResolvedWeights("dino_vitb8", tmp_path / "tiny.pth", "0" * 64, False, "override", "a tiny random ViT")
    monkeypatch.setattr(dino_struct, "build_dino_vitb8", lambda device, weights_dir=None: (tiny, weights))
    result = _eval(real, fake)
    assert result.exit_code == 1, result.output  # `i2i eval` scores the rest, lists the bad file, exits 1
    payload = json.loads(result.stdout[result.stdout.index("{"):])
    expected = dino_struct.pair_distance(tiny, load_image(real / "a.png"), load_image(fake / "a.png"))
    assert payload["dino_struct"] == pytest.approx(expected) and expected > 0
    protocol = payload["protocol"]["dino_struct"]
    assert protocol["pairs"] == 1 and protocol["unmatched_fakes"] == ["stray.png"] and protocol["layer"] == 11
    assert any(bad["file"].endswith("b.png") for bad in payload["bad_files"])
