"""Trained-looking run folders without the trainer: a tiny method written with the checkpoint module."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from i2i_cli.diffusion.base_model import attach_base_model
from i2i_cli.engine.checkpoint import RunConfig, save_checkpoint, write_run_config
from i2i_cli.models import registry
from tests.conftest import tiny_config


def make_run(folder: Path, method: str = "pix2pix", domains: list[str] | None = None, seed: int = 0,
             data: dict[str, Any] | None = None, **config: Any) -> Path:
    """A run folder (config.json + one checkpoint) of `method` at tiny widths (ngf 8, size 32)."""
    cls = registry.method_class(method)
    torch.manual_seed(seed)
    names = domains or (["cat", "dog", "wild"] if cls.takes_style_reference else None)
    net = cls(tiny_config(method, **config), names)
    attach_base_model(net)
    for module in net.modules():  # non-trivial BatchNorm statistics so eval-mode differences would show
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.9, 1.1)
    run_config = RunConfig(method, net.config.to_dict(), net.domains, data=data or {})
    folder.mkdir(parents=True, exist_ok=True)
    write_run_config(folder, run_config)
    save_checkpoint(folder, run_config, 1, net.saved_state_dict(), None, None)
    return folder
