"""Record tests/golden/pix2pix_discriminators.pt from junyanz/pytorch-CycleGAN-and-pix2pix (runs outside CI).

    I2I_OFFICIAL_JZ=/path/to/pytorch-CycleGAN-and-pix2pix python tests/golden/record_pix2pix_discriminators.py

The pix2pix paper's discriminator-field ablation (its Table 2 rows: 1x1 PixelGAN, 16x16, 70x70, 286x286) is the
official `networks.define_D` with `--netD pixel` or `--netD n_layers --n_layers_D 1 / 3 / 5`. For each, in float64:
define_D (batch norm, normal init 0.02, ndf 2) for a conditional (6-channel) and an unconditional (3-channel)
input, one forward of a seeded input in training mode, and the gradients of the vanilla GAN loss (BCE with
logits against "real") with respect to the input and every parameter. The recorded state_dict is loaded into
i2i's PatchDiscriminator / PixelDiscriminator by tests/golden/test_golden_pix2pix_discriminators.py.
If the checkout is not a git clone, give its commit in I2I_OFFICIAL_JZ_COMMIT.
"""

from __future__ import annotations

import torch
from recording_cut_cyclegan_pix2pix import official_checkout
from torch import nn

NDF, BATCH = 2, 2
# (name, netD, n_layers_D, image size): the smallest sizes that leave a 2x2 output or more (286x286: 96 px)
CASES = [("pixel", "pixel", 3, 8), ("n_layers_1", "n_layers", 1, 16), ("n_layers_3", "basic", 3, 32),
         ("n_layers_5", "n_layers", 5, 96)]


def record_case(networks: object, net_d: str, n_layers: int, size: int, channels: int, seed: int,
                batch: int = BATCH) -> dict:
    torch.manual_seed(seed)
    net = networks.define_D(channels, NDF, net_d, n_layers_D=n_layers, norm="batch").double()
    state = {k: v.detach().clone() for k, v in net.state_dict().items()}
    # float32 draws (stored as float32, exactly representable), run in float64: half the fixture's size
    x32 = torch.randn(batch, channels, size, size, dtype=torch.float32, generator=torch.Generator().manual_seed(seed))
    x = x32.double().requires_grad_(True)
    out = net(x)
    loss = nn.BCEWithLogitsLoss()(out, torch.ones_like(out))
    loss.backward()
    return {"netD": net_d, "n_layers_D": n_layers, "channels": channels, "size": size, "state": state,
            "input_f32": x32, "output": out.detach().clone(), "loss": float(loss.detach()),
            "input_grad": x.grad.detach().clone() if size <= 32 else None,
            "param_grads": {k: p.grad.detach().clone() for k, p in net.named_parameters()}}


def main() -> None:
    from pathlib import Path

    _, commit = official_checkout("I2I_OFFICIAL_JZ")
    from models import networks  # the official checkout's package (first on sys.path)

    torch.set_default_dtype(torch.float64)
    cases = {}
    for i, (name, net_d, n_layers, size) in enumerate(CASES):
        for channels in (6, 3) if size <= 32 else (6,):  # conditional (input | output), unconditional (output)
            batch = BATCH if size <= 32 else 1  # the 96 px case: one image, the conditional D only (file size)
            cases[f"{name}_{channels}ch"] = record_case(networks, net_d, n_layers, size, channels, 100 + i, batch)
    path = Path(__file__).resolve().parent / "pix2pix_discriminators.pt"
    torch.save({"official_repo": "https://github.com/junyanz/pytorch-CycleGAN-and-pix2pix",
                "official_commit": commit, "dtype": "float64", "ndf": NDF, "cases": cases}, path)
    print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
