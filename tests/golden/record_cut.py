"""Record tests/golden/cut.pt from taesungp/contrastive-unpaired-translation (runs outside CI).

    I2I_OFFICIAL_CUT=/path/to/contrastive-unpaired-translation python tests/golden/record_cut.py

The checkout's options (TrainOptions), models/cut_model.py (CUTModel), networks.py and patchnce.py are
imported; as train.py does, `data_dependent_initialize` (which builds netF) runs on the batch, then one
`optimize_parameters()`. Settings: --CUT_mode CUT, ngf 4, ndf 2, netG resnet_6blocks (nce_layers
0,4,8,12,16: input, both downsampling convolutions, blocks 1 and 5), netF_nc 16, num_patches 64, 32 px, batch 2,
the rest the CUT defaults (xavier init, instance norm, anti-aliased G and D, lsgan, nce_T 0.07, nce_idt).
The official code runs in float64 (use_float64: every network, buffer and input). The official draws (numpy: the PatchNCE locations of each NCE term; FastCUT's flip) are taken during the
step and saved, so i2i replays them through its phase cache (models/draws.py).
"""

from __future__ import annotations

import sys

import numpy as np
import torch
from recording_cut_cyclegan_pix2pix import (
    after_step,
    images_u8,
    official_checkout,
    round_weights_to_half,
    save,
    strip_module_prefix,
    to_float,
    use_float64,
)

SIZE, BATCH, NDF, PATCHES = 32, 2, 2, 64
# name -> CUT_mode, ngf, netF_nc, numpy seed before the step (seed 1 draws a flip for FastCUT: 0.417 < 0.5)
MODES = {"cut": ("CUT", 4, 16, 0), "fastcut": ("FastCUT", 3, 16, 1)}


def record(name: str) -> None:
    _, commit = official_checkout("I2I_OFFICIAL_CUT")
    use_float64()
    from models.cut_model import CUTModel
    from options.train_options import TrainOptions

    mode, ngf, netf_nc, np_seed = MODES[name]
    line = (f"--dataroot unused --name golden_{name} --checkpoints_dir /tmp/golden_checkpoints --gpu_ids -1 "
            f"--CUT_mode {mode} --ngf {ngf} --ndf {NDF} --netG resnet_6blocks --netF_nc {netf_nc} "
            f"--num_patches {PATCHES} --batch_size {BATCH} --load_size {SIZE} --crop_size {SIZE}")
    # CUTModel.modify_commandline_options reads --CUT_mode from sys.argv even when TrainOptions gets a command
    # line, so the line goes there as well
    sys.argv = [sys.argv[0], *line.split()]
    opt = TrainOptions(line).gather_options()
    assert opt.CUT_mode == mode and opt.nce_idt == (mode == "CUT"), "the CUT_mode defaults were not applied"
    opt.isTrain, opt.gpu_ids = True, []
    torch.manual_seed(0)
    np.random.seed(0)
    model = CUTModel(opt)
    g = torch.Generator().manual_seed(11)
    a_u8, b_u8 = images_u8(g, BATCH, 3, SIZE, SIZE), images_u8(g, BATCH, 3, SIZE, SIZE)
    data = {"A": to_float(a_u8), "B": to_float(b_u8), "A_paths": [], "B_paths": []}
    model.data_dependent_initialize(data)
    model.set_input(data)
    nets = {"G": model.netG, "D": model.netD, "F": model.netF}
    init = {k: strip_module_prefix(round_weights_to_half(net)) for k, net in nets.items()}

    patch_ids: list[list[torch.Tensor]] = []
    sample = model.netF.forward

    def recording_forward(feats, num_patches=64, patch_ids_in=None):  # noqa: ANN001, ANN202
        feats_out, ids = sample(feats, num_patches, patch_ids_in)
        if patch_ids_in is None:
            patch_ids.append([i.clone() for i in ids])
        return feats_out, ids

    model.netF.forward = recording_forward
    np.random.seed(np_seed)
    model.optimize_parameters()

    terms = ["NCE", "NCE_Y"] if opt.nce_idt else ["NCE"]
    draws: dict[str, object] = {f"patch_ids/{t}": ids for t, ids in zip(terms, patch_ids, strict=True)}
    if opt.flip_equivariance:
        draws["flip"] = bool(model.flipped_for_equivariance)
    losses = {k: float(getattr(model, f"loss_{k}")) for k in ["D_fake", "D_real", "G_GAN"] + terms}
    save({
        "official_repo": "https://github.com/taesungp/contrastive-unpaired-translation", "official_commit": commit,
        "dtype": "float64",
        "config": {"size": SIZE, "batch_size": BATCH, "ngf": ngf, "ndf": NDF, "n_blocks": 6, "netF_nc": netf_nc,
                   "num_patches": PATCHES, "nce_layers": opt.nce_layers, "nce_idt": bool(opt.nce_idt),
                   "lambda_NCE": opt.lambda_NCE, "lambda_GAN": opt.lambda_GAN, "nce_T": opt.nce_T,
                   "flip_equivariance": bool(opt.flip_equivariance), "lr": opt.lr, "beta1": opt.beta1,
                   "beta2": opt.beta2, "init_type": opt.init_type, "gan_mode": opt.gan_mode},
        "inputs": {"A_u8": a_u8, "B_u8": b_u8},
        "draws": draws,
        "init": init,
        "outputs": {"fake_B": model.fake_B.detach().clone(),
                    **({"idt_B": model.idt_B.detach().clone()} if opt.nce_idt else {})},
        "losses": losses,
        "after": {k: after_step(net, init[k]) for k, net in nets.items()},
    }, name)


if __name__ == "__main__":
    record("cut")
