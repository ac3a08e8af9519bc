"""Shared fixtures: tiny synthetic datasets, an isolated $I2I_HOME, offline weights, small method configs."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import pytest
import torch

# pytest-xdist runs one process per core (`-n auto`): each gets its share of the cores, not all of them, so the
# workers' intra-op threads don't fight over the same cores
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1) // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))))

# Width-like options shrunk for every method that has them, so each trains in seconds on a CPU.
TINY_VALUES: dict[str, Any] = {
    "ngf": 8, "ndf": 8, "netF_nc": 16, "num_patches": 16, "max_conv_dim": 32, "style_dim": 16, "latent_dim": 8,
    "mapping_dim": 32, "dim_in": 16, "n_blocks": 2, "attention_ngf": 8, "base_channels": 4,
    "pretrained_backbone": False,
}
TINY_SIZE = 32
# Methods whose width tables give many channels at small resolutions (StyleGAN2's: 512 * ngf / 32 at 32 px).
# SinCUT: 64 MLP units (with 16, one row of all-dead ReLUs is likely at these widths, and its 0-norm output has
# an infinite gradient through the normalisation, in the reference too).
TINY_OVERRIDES: dict[str, dict[str, Any]] = {
    "sincut": {"ngf": 2, "ndf": 2, "netF_nc": 64}, "sinsesim": {"ngf": 2, "ndf": 2},
    "pix2pix_turbo": {"caption": "a cat", "lambda_clipsim": 0.0, "lambda_gan": 0.0},
    "cyclegan_turbo": {"caption_A": "a cat", "caption_B": "a dog", "lambda_gan": 0.0},
}


def tiny_config(method: str, **extra: Any) -> Any:
    from i2i_cli.models import registry

    cls = registry.method_class(method)
    config = cls.config_class()
    names = {f.name for f in dataclasses.fields(config)}
    values = {k: v for k, v in TINY_VALUES.items() if k in names}
    values.update(size=TINY_SIZE, load_size=36, batch_size=2)
    values.update(TINY_OVERRIDES.get(method, {}))
    if "base_model" in names:  # img2img-turbo: a tiny random sd-turbo-layout folder instead of the real one
        from tests.tiny_diffusion import tiny_base_model

        values.update(base_model=str(tiny_base_model()), lora_rank_unet=4)
    values.update(extra)
    return dataclasses.replace(config, **values)


@pytest.fixture(scope="session", autouse=True)
def isolated_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """No test touches ~/.cache or the network: $I2I_HOME is temporary, downloads are off by default."""
    home = tmp_path_factory.mktemp("i2i_home")
    os.environ["I2I_HOME"] = str(home)
    os.environ["I2I_OFFLINE"] = "1"
    os.environ["TORCH_HOME"] = str(home / "torch")
    return home


@pytest.fixture(scope="session")
def fake_weights_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An I2I_WEIGHTS_DIR with VGG16-shaped weights (seeded random, features only) under the official name."""
    import torchvision

    folder = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    features = torchvision.models.vgg16(weights=None).features.state_dict()
    torch.save({f"features.{k}": v for k, v in features.items()}, folder / "vgg16-397923af.pth")
    return folder


@pytest.fixture(scope="session")
def datasets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from i2i_cli.data.synth import synthesize

    root = tmp_path_factory.mktemp("data")
    out = {}
    for layout in ("aligned", "unaligned", "domains"):
        out[layout] = synthesize("scenes", root / layout, layout, size=40, n_train=8, n_test=4, n_domains=3, seed=1).root
    out["single_image"] = synthesize("scenes", root / "single_image", "single_image", size=48, n_train=1, n_test=1,
                                     seed=1).root
    out["segmentation"] = out["aligned"]  # label map | photo pairs: what a segmenter trains on
    return out
