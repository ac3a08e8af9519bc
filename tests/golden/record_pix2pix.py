"""Record tests/golden/pix2pix.pt from junyanz/pytorch-CycleGAN-and-pix2pix (runs outside CI).

    I2I_OFFICIAL_JZ=/path/to/pytorch-CycleGAN-and-pix2pix python tests/golden/record_pix2pix.py

The checkout's `models/pix2pix_model.py` (Pix2PixModel), `models/networks.py` and `util/image_pool.py` are
imported and one `optimize_parameters()` is run at ngf = ndf = 2, 64 px, batch 1 (the paper's), norm batch,
dropout on, gan_mode vanilla, lambda_L1 100, pool_size 0. define_G offers only unet_128 / unet_256, so netG
is the official UnetGenerator with num_downs 6 (what those names build with 7 / 8), made by
networks.init_net, and optimizer_G is rebuilt over it exactly as Pix2PixModel.__init__ builds it. The
dropout masks are torch draws: the step runs right after torch.manual_seed(seed), and the fixture records
the seed and the masks (i2i draws them in the same order: the first random call of the step is the
generator's forward).
If the checkout is not a git clone, give its commit in I2I_OFFICIAL_JZ_COMMIT.
"""

from __future__ import annotations

import argparse

import torch
from recording_cut_cyclegan_pix2pix import (
    after_step,
    images_u8,
    official_checkout,
    round_weights_to_half,
    save,
    to_float,
)
from torch import nn

SIZE, BATCH, NGF, NDF, NUM_DOWNS, SEED = 64, 1, 2, 2, 6, 1234  # batch 1: the paper's


def options() -> argparse.Namespace:
    return argparse.Namespace(
        input_nc=3, output_nc=3, ngf=NGF, ndf=NDF, netG="unet_128", netD="basic", n_layers_D=3, norm="batch",
        no_dropout=False, init_type="normal", init_gain=0.02, gpu_ids=[], isTrain=True, checkpoints_dir="/tmp",
        name="golden_pix2pix", preprocess="resize_and_crop", pool_size=0, gan_mode="vanilla", lr=0.0002,
        beta1=0.5, lambda_L1=100.0, direction="AtoB")


def dropout_masks(net: nn.Module) -> list[torch.Tensor]:
    masks: list[torch.Tensor] = []

    def hook(module: nn.Module, inputs: tuple[torch.Tensor], output: torch.Tensor) -> None:
        masks.append((output == 0) & (inputs[0] != 0))  # True where the unit was dropped

    for m in net.modules():
        if isinstance(m, nn.Dropout):
            m.register_forward_hook(hook)
    return masks


def main() -> None:
    _, commit = official_checkout("I2I_OFFICIAL_JZ")
    from models.pix2pix_model import Pix2PixModel

    from models import networks

    torch.manual_seed(0)
    opt = options()
    model = Pix2PixModel(opt)
    model.netG = networks.init_net(networks.UnetGenerator(3, 3, NUM_DOWNS, NGF, norm_layer=networks.get_norm_layer("batch"),
                                                          use_dropout=True), opt.init_type, opt.init_gain, [])
    model.optimizer_G = torch.optim.Adam(model.netG.parameters(), lr=opt.lr, betas=(opt.beta1, 0.999))
    model.optimizers = [model.optimizer_G, model.optimizer_D]
    init = {"G": round_weights_to_half(model.netG), "D": round_weights_to_half(model.netD)}

    g = torch.Generator().manual_seed(7)
    a_u8, b_u8 = images_u8(g, BATCH, 3, SIZE, SIZE), images_u8(g, BATCH, 3, SIZE, SIZE)
    model.set_input({"A": to_float(a_u8), "B": to_float(b_u8), "A_paths": [], "B_paths": []})
    masks = dropout_masks(model.netG)
    torch.manual_seed(SEED)
    model.optimize_parameters()

    save({
        "official_repo": "https://github.com/junyanz/pytorch-CycleGAN-and-pix2pix", "official_commit": commit,
        "config": {"size": SIZE, "batch_size": BATCH, "ngf": NGF, "ndf": NDF, "num_downs": NUM_DOWNS,
                   "n_layers_D": 3, "norm": "batch", "dropout": True, "gan_mode": "vanilla", "lambda_L1": 100.0,
                   "lr": 0.0002, "beta1": 0.5, "beta2": 0.999, "direction": "AtoB"},
        "inputs": {"A_u8": a_u8, "B_u8": b_u8},
        "draws": {"torch_seed": SEED, "dropout_masks": [m.clone() for m in masks]},
        "init": init,
        "outputs": {"fake_B": model.fake_B.detach().clone()},
        "losses": {k: float(getattr(model, f"loss_{k}")) for k in ("D_fake", "D_real", "G_GAN", "G_L1")},
        "after": {"G": after_step(model.netG, init["G"]), "D": after_step(model.netD, init["D"])},
    }, "pix2pix")


if __name__ == "__main__":
    main()
