"""Record the fsesim golden fixture from the official F-LSeSim code (`--model sc`).

Runs outside CI:  I2I_OFFICIAL_FLSESIM=/tmp/official/flsesim python tests/golden/record_fsesim.py
(a checkout of lyndonzheng/F-LSeSim; its commit is read from I2I_OFFICIAL_FLSESIM_COMMIT, or from its .git).
It must not import i2i: the official package is also called `models`.

Tiny setting: 32 px crops (load 36), ngf 2, ndf 4, batch 1, CPU. VGG16 is torchvision's layout with tiny widths
and seeded random weights (the official VGG16 wrapper slices `features` by index, so only the widths differ);
the real one (15M parameters) would not fit a fixture. Recorded: the tiny VGG's weights; the official G, D (and
for LSeSim the head) weights before one `optimize_parameters`, G's (and the head's) after it and their
gradients; every loss term; the loader's images as uint8 (A, B and, with --augment, the jittered copies); the
jitter draws and every query-location draw (`patch_ids`, in call order). Only numbers are saved.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import types
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torchvision
from PIL import Image
from torch import nn

OFFICIAL_REPO = "lyndonzheng/F-LSeSim"
VGG_WIDTHS = {64: 4, 128: 8, 256: 8, 512: 16}  # torchvision's widths -> the tiny VGG's
_VGG_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]


def official_root() -> Path:
    root = os.environ.get("I2I_OFFICIAL_FLSESIM")
    if not root or not (Path(root) / "models" / "sc_model.py").is_file():
        sys.exit("set I2I_OFFICIAL_FLSESIM to a checkout of lyndonzheng/F-LSeSim (with models/sc_model.py)")
    return Path(root)


def official_commit(root: Path) -> str:
    commit = os.environ.get("I2I_OFFICIAL_FLSESIM_COMMIT")
    if commit:
        return commit
    return subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()


def tiny_vgg_features(seed: int = 0) -> nn.Sequential:
    """torchvision's vgg16().features indices with tiny widths, seeded default init (the global RNG untouched)."""
    layers: list[nn.Module] = []
    channels = 3
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        for v in _VGG_CFG:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(channels, VGG_WIDTHS[int(v)], 3, padding=1), nn.ReLU(inplace=True)]
                channels = VGG_WIDTHS[int(v)]
    return nn.Sequential(*layers)


class _TinyVGG(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = tiny_vgg_features()


def make_images(folder: Path, seed: int, size: int = 40) -> None:
    """Two smooth colour images per domain (trainA, trainB), PNG."""
    rng = np.random.default_rng(seed)
    for domain in ("trainA", "trainB"):
        (folder / domain).mkdir(parents=True)
        for i in range(2):
            low = rng.uniform(0, 255, size=(5, 5, 3)).astype(np.uint8)
            img = Image.fromarray(low).resize((size, size), Image.BICUBIC)
            img.save(folder / domain / f"{i}.png")


class Recorder:
    """Wraps the official random draws (query locations, colour jitter) to log them in call order."""

    def __init__(self) -> None:
        self.patch_ids: list[torch.Tensor] = []
        self.jitter: list[dict[str, Any]] = []

    def install(self, losses_module: Any) -> None:
        select = losses_module.PatchSim.select_patch

        def select_patch(sim: Any, feat: torch.Tensor, patch_ids: torch.Tensor | None = None) -> Any:
            fresh = patch_ids is None
            query, key, ids = select(sim, feat, patch_ids=patch_ids)
            if fresh and ids is not None:
                self.patch_ids.append(ids.clone())
            return query, key, ids

        losses_module.PatchSim.select_patch = select_patch
        get_params = torchvision.transforms.ColorJitter.get_params

        def logged(*args: Any) -> Any:
            out = get_params(*args)
            order, *factors = out
            self.jitter.append({"order": torch.as_tensor(order).clone(),
                                "factors": torch.tensor([float("nan") if f is None else float(f) for f in factors],
                                                        dtype=torch.float64)})
            return out

        torchvision.transforms.ColorJitter.get_params = staticmethod(logged)


def _state(net: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def _grads(net: nn.Module) -> dict[str, torch.Tensor]:
    return {k: (p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p))
            for k, p in net.named_parameters()}


def _as_8bit(x: torch.Tensor) -> torch.Tensor:
    """The loader's (u / 255 - 0.5) / 0.5 back to its uint8 pixels (checked exact), to keep the fixture small."""
    pixels = ((x * 0.5 + 0.5) * 255).round().to(torch.uint8)
    assert torch.equal((pixels.float() / 255 - 0.5) / 0.5, x), "the loader's image is not 8-bit"
    return pixels


def _block(index: int) -> str:
    """The official VGG16 wrapper's sub-module holding torchvision's features[index]."""
    starts = [(0, "1_1"), (2, "1_2"), (4, "2_1"), (7, "2_2"), (9, "3_1"), (12, "3_2"), (14, "3_3"), (16, "4_1"),
              (18, "4_2"), (21, "4_3"), (23, "5_1"), (26, "5_2"), (28, "5_3")]
    return [name for start, name in starts if start <= index][-1]


def _number(x: Any) -> float:
    return float(x.detach()) if torch.is_tensor(x) else float(x)


def record(name: str, extra_args: list[str]) -> dict[str, Any]:
    root = official_root()
    sys.path.insert(0, str(root))
    torchvision.models.vgg16 = lambda *a, **k: _TinyVGG()  # the official VGG16 asks for pretrained=True
    # data/__init__ imports every dataset; only oa_dataset (unused here) needs h5py
    sys.modules.setdefault("h5py", types.ModuleType("h5py"))
    from data import create_dataset  # noqa: E402  (the official packages)
    from options.train_options import TrainOptions

    from models import create_model, losses

    recorder = Recorder()
    recorder.install(losses)
    work = Path(tempfile.mkdtemp())
    make_images(work / "data", seed=3)
    sys.argv = ["train.py", "--dataroot", str(work / "data"), "--model", "sc", "--gpu_ids", "-1",
                "--checkpoints_dir", str(work / "ck"), "--name", name, "--ngf", "2", "--ndf", "4",
                "--load_size", "36", "--crop_size", "32", "--batch_size", "1", "--serial_batches",
                "--num_threads", "0", "--display_id", "0", *extra_args]
    opt = TrainOptions().parse()
    random_seed = 0
    torch.manual_seed(random_seed)
    import random
    random.seed(random_seed)
    np.random.seed(random_seed)
    loader = create_dataset(opt)
    recorder.jitter.clear()  # the official loader fetches item 0 once when it is built; that draw is not used
    data = next(iter(loader))
    jitter_draws = list(recorder.jitter)
    model = create_model(opt)
    model.data_dependent_initialize(data)
    model.setup(opt)
    init_ids = len(recorder.patch_ids)  # draws made by data_dependent_initialize (its own backward_G)
    nets = {"G": model.netG, "D": model.netD}
    if opt.learned_attn:
        nets["F"] = model.netF
    before = {k: _state(v) for k, v in nets.items()}
    model.set_input(data)
    model.optimize_parameters()
    fixture: dict[str, Any] = {
        "official_repo": OFFICIAL_REPO, "official_commit": official_commit(root),
        "options": {k: (v if isinstance(v, (int, float, str, bool)) else str(v)) for k, v in vars(opt).items()
                    if k in ("ngf", "ndf", "lr", "beta1", "beta2", "patch_nums", "patch_size", "loss_mode",
                             "use_norm", "learned_attn", "augment", "T", "lambda_spatial", "attn_layers",
                             "init_type", "init_gain", "crop_size", "load_size", "gan_mode")},
        "images": {k: _as_8bit(data[k]) for k in ("A", "B", "A_aug", "B_aug") if k in data},
        "jitter_draws": jitter_draws,
        "patch_ids": recorder.patch_ids[init_ids:],
        "fake_B": model.fake_B.detach().clone(),
        "losses": {"G_GAN": _number(model.loss_G_GAN), "G_s": _number(model.loss_G_s),
                   "D_real": _number(model.loss_D_real), "D_fake": _number(model.loss_D_fake)},
        "before": before,
        # D's step is left out to keep the fixture small (the brief pins G's and the head's)
        "after": {k: _state(v) for k, v in nets.items() if k != "D"},
        "grads": {k: _grads(v) for k, v in nets.items() if k != "D"},
    }
    vgg = tiny_vgg_features()
    official_vgg = dict(model.netPre.named_parameters())
    assert all(torch.equal(official_vgg[f"relu{_block(int(k.split('.')[0]))}.{k}"], v)
               for k, v in vgg.state_dict().items()), "the official VGG16 is not the tiny one"
    # up to relu4_3 (features[22]), the deepest layer the loss reads
    fixture["vgg_features"] = {k: v for k, v in _state(vgg).items() if int(k.split(".")[0]) <= 22}
    if opt.learned_attn:
        fixture["losses"]["spatial"] = _number(model.loss_spatial)
    return fixture


def main() -> None:
    fixture = record("fsesim", [])
    out = Path(__file__).resolve().parent / "fsesim.pt"
    torch.save(fixture, out)
    print(f"wrote {out} ({out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
