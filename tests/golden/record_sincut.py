"""Record tests/golden/sincut.pt from taesungp/contrastive-unpaired-translation's SinCUT (runs outside CI).

    I2I_OFFICIAL_CUT=/path/to/contrastive-unpaired-translation python tests/golden/record_sincut.py

Imports the checkout's options (TrainOptions with --model sincut: its defaults) and models/sincut_model.py,
builds the model in float64 (torch's default dtype set to float64, the networks' blur kernels cast), runs
`data_dependent_initialize` (which builds netF) on the batch, then one `optimize_parameters()`.
Settings: the SinCUT defaults (StyleGAN2 G with one downsampling, nce_layers 0,2,4, one patch per layer with
the batch's negatives, lambda_NCE 4, R1 1, identity 1, non-saturating GAN, lr 0.002, betas (0, 0.99)) at the
official 64 px crop, with tiny widths (ngf 1, ndf 1, netF_nc 16) and batch 2. Recorded: the networks before the
step, G's / F's / D's weights after it and G's / F's gradients, every loss term, G(A), and the official draws of
the step (numpy's PatchNCE locations, the noise maps G's up-convolution drew). Only numbers are saved.
The reference's ModulatedConv2d puts its unit style on CUDA (`.cuda()`); on the CPU that call is made a no-op.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

SIZE, BATCH, NGF, NDF, NETF_NC = 64, 2, 1, 1, 16
OFFICIAL_REPO = "taesungp/contrastive-unpaired-translation"
INIT_SEEDS = {"G": 1, "D": 2, "F": 3}
D_LEFT_OUT = ("final_linear.0.weight", "final_conv.0.weight")


def checkout() -> tuple[Path, str]:
    root = Path(os.environ.get("I2I_OFFICIAL_CUT", "")).resolve()
    if not (root / "models" / "sincut_model.py").is_file():
        sys.exit("set I2I_OFFICIAL_CUT to a checkout of taesungp/contrastive-unpaired-translation")
    sys.path.insert(0, str(root))
    commit = os.environ.get("I2I_OFFICIAL_CUT_COMMIT") or subprocess.run(
        ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    return root, commit


class Draws:
    """The official random draws of the step, in call order."""

    def __init__(self) -> None:
        self.noise: list[torch.Tensor] = []
        self.patch_ids: list[list[torch.Tensor]] = []

    def install(self, stylegan: Any, networks: Any) -> None:
        inject = stylegan.NoiseInjection.forward

        def noise_forward(module: Any, image: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
            if noise is None:
                noise = image.new_empty(image.shape[0], 1, *image.shape[2:]).normal_()
                self.noise.append(noise.clone())
            return inject(module, image, noise=noise)

        stylegan.NoiseInjection.forward = noise_forward
        sample = networks.PatchSampleF.forward

        def sample_forward(module: Any, feats: Any, num_patches: int = 64, patch_ids: Any = None) -> Any:
            out, ids = sample(module, feats, num_patches, patch_ids)
            if patch_ids is None:
                self.patch_ids.append([torch.as_tensor(i).clone() for i in ids])
            return out, ids

        networks.PatchSampleF.forward = sample_forward


@torch.no_grad()
def canonical_init(net: torch.nn.Module, seed: int) -> None:
    """Every parameter redrawn N(0, 1) (vectors: N(0, 0.1^2)) from a seeded generator in sorted-key order, so the
    test rebuilds the weights before the step instead of loading them (they would not fit the fixture); the
    noise strengths then differ from 0, so the recorded noise maps matter."""
    generator = torch.Generator().manual_seed(seed)
    params = dict(net.named_parameters())
    for key in sorted(params):
        p = params[key]
        p.copy_(torch.randn(p.shape, generator=generator, dtype=torch.float64) * (1.0 if p.dim() > 1 else 0.1))


def state(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def grads(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: (p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p))
            for k, p in net.named_parameters()}


def main() -> None:
    _, commit = checkout()
    torch.Tensor.cuda = lambda self, *args, **kwargs: self  # the unit style of ModulatedConv2d (see docstring)
    torch.set_default_dtype(torch.float64)
    from models.sincut_model import SinCUTModel
    from options.train_options import TrainOptions

    from models import networks, stylegan_networks

    line = (f"--dataroot unused --name golden_sincut --checkpoints_dir /tmp/golden_checkpoints --gpu_ids -1 "
            f"--model sincut --ngf {NGF} --ndf {NDF} --netF_nc {NETF_NC} --batch_size {BATCH}")
    sys.argv = [sys.argv[0], *line.split()]
    opt = TrainOptions(line).gather_options()
    opt.isTrain, opt.gpu_ids = True, []
    assert opt.crop_size == SIZE and opt.netG == "stylegan2" and opt.nce_includes_all_negatives_from_minibatch
    torch.manual_seed(0)
    np.random.seed(0)
    model = SinCUTModel(opt)
    for net in (model.netG, model.netD):
        net.double()
    g = torch.Generator().manual_seed(5)
    a_u8 = torch.randint(0, 256, (BATCH, 3, SIZE, SIZE), generator=g, dtype=torch.uint8)
    b_u8 = torch.randint(0, 256, (BATCH, 3, SIZE, SIZE), generator=g, dtype=torch.uint8)
    data = {"A": a_u8.double() / 127.5 - 1, "B": b_u8.double() / 127.5 - 1, "A_paths": [], "B_paths": []}
    model.data_dependent_initialize(data)
    model.set_input(data)
    nets = {"G": model.netG, "D": model.netD, "F": model.netF}
    for name in nets:
        canonical_init(nets[name], seed=INIT_SEEDS[name])
    buffers = {k: {b: v for b, v in state(net).items() if b not in dict(net.named_parameters())}
               for k, net in nets.items()}
    draws = Draws()
    draws.install(stylegan_networks, networks)
    model.optimize_parameters()
    losses = {k: float(getattr(model, f"loss_{k}")) for k in ("D_fake", "D_real", "D_R1", "G_GAN", "NCE", "NCE_Y",
                                                                "idt")}
    fixture = {
        "official_repo": OFFICIAL_REPO, "official_commit": commit, "dtype": "float64",
        "options": {k: getattr(opt, k) for k in ("ngf", "ndf", "netF_nc", "crop_size", "lr", "beta1", "beta2",
                                                 "lambda_NCE", "lambda_R1", "lambda_identity", "nce_layers",
                                                 "num_patches", "nce_T", "stylegan2_G_num_downsampling",
                                                 "gan_mode", "init_type", "init_gain")},
        "images": {"A": a_u8, "B": b_u8},
        "draws": {"noise": draws.noise, "patch_ids": draws.patch_ids},
        "losses": losses,
        "fake_B": model.fake_B.detach().clone(),
        "init_seeds": INIT_SEEDS,
        "buffers": buffers,
        # D's two largest tensors are left out (1 MB): every other D tensor, all of G and F
        "after": {k: {key: v for key, v in state(net).items() if key not in D_LEFT_OUT}
                  for k, net in nets.items()},
        "grads": {k: grads(v) for k, v in nets.items() if k != "D"},
    }
    out = Path(__file__).resolve().parent / "sincut.pt"
    torch.save(fixture, out)
    print(f"wrote {out} ({out.stat().st_size} bytes); losses {losses}")


if __name__ == "__main__":
    main()
