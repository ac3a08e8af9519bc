"""The spatially-correlative loss and the LSeSim head (VGG16-shaped network with test-made weights)."""

from __future__ import annotations

import numpy as np
import torch

from i2i_cli.data.images import load_image
from i2i_cli.engine.pretrained import load_pretrained_modules
from models.base import Progress
from models.losses.spatial_correlative import colour_jitter, window_indices
from models.methods.sesim import FSeSim, LSeSim
from tests.conftest import tiny_config


def _photo(datasets) -> torch.Tensor:
    pair = load_image(sorted((datasets["aligned"] / "train").glob("*.png"))[1])
    photo = np.ascontiguousarray(pair[:, pair.shape[1] // 2 :])
    return torch.from_numpy(photo).permute(2, 0, 1)[None].float().div(127.5).sub(1)


def test_loss_ignores_colour_and_sees_a_spatial_shift(datasets, fake_weights_dir, monkeypatch):
    monkeypatch.setenv("I2I_WEIGHTS_DIR", str(fake_weights_dir))
    method = FSeSim(tiny_config("fsesim"))
    used = load_pretrained_modules(method)
    assert used[0].source == "override"
    x = _photo(datasets)
    torch.manual_seed(0)
    jittered = colour_jitter(x)
    shifted = torch.roll(x, shifts=x.shape[-1] // 4, dims=-1)
    with torch.no_grad():
        torch.manual_seed(1)
        same = method.spatial_loss(x, x).item()
        torch.manual_seed(1)
        colour = method.spatial_loss(x, jittered).item()
        torch.manual_seed(1)
        shift = method.spatial_loss(x, shifted).item()
    assert same < 1e-6
    assert shift > 3 * colour, (colour, shift)


def test_window_keeps_queries_inside_the_map():
    keys = window_indices(6, 6, torch.tensor([0, 35, 14]), 3)
    assert keys.shape == (3, 9) and int(keys.min()) >= 0 and int(keys.max()) <= 35
    assert window_indices(4, 4, torch.tensor([5]), 8).shape == (1, 16)  # window covers the map: global


def test_lsesim_head_loss_updates_only_the_head(datasets, fake_weights_dir, monkeypatch):
    monkeypatch.setenv("I2I_WEIGHTS_DIR", str(fake_weights_dir))
    torch.manual_seed(0)
    method = LSeSim(tiny_config("lsesim"))
    load_pretrained_modules(method)
    phases = method.phases(Progress())
    assert [p.name for p in phases] == ["head", "D", "G"]
    x = _photo(datasets)[:, :, :32, :32]
    batch = {"A": x, "B": torch.flip(x, [-1])}
    terms = phases[0].compute(batch, {})
    sum(terms.values()).backward()
    with_grad = {name for name, p in method.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert with_grad and all(name.startswith("head.") for name in with_grad)
