"""Record tests/golden/sinsesim.pt from lyndonzheng/F-LSeSim's single-image model (`--model sinsc`; outside CI).

    I2I_OFFICIAL_FLSESIM=/path/to/F-LSeSim python tests/golden/record_sinsesim.py

Imports the checkout's options (TrainOptions with --model sinsc, --pool_size 0 as scripts/train_sinsc.sh) and
models (SinSCModel, its stylegan_networks and losses), in float64 (torch's default dtype set to float64, the
networks cast), runs `data_dependent_initialize` on the batch, then one `optimize_parameters()`. Settings: the
sinsc defaults (StyleGAN2 G with two downsamplings and tanh, D down to 8 x 8, non-saturating GAN, the gradient
penalty at real / fake mixes with weight 1, the spatially-correlative loss at VGG16 4,7,9 with weight 10, 256
queries, lr 0.001, betas (0, 0.99)) at 64 px crops (the official 128 would need a larger D) with tiny widths
(ngf 1, ndf 1) and batch 2. VGG16 is record_fsesim's tiny seeded one (same indices, tiny widths). The weights
before the step are redrawn from seeds (`canonical_init`; the test redraws them). Recorded: G's gradients, D's
weights after its step (its largest tensor left out), every loss term, G(A), and the official draws of
the step (G's noise maps, the query locations, the penalty's mixing weights). Only numbers are saved.
"""

from __future__ import annotations

import sys
import tempfile
import types
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torchvision
from record_fsesim import Recorder, _block, _TinyVGG, official_commit, official_root, tiny_vgg_features
from record_sincut import canonical_init, grads, state

SIZE, BATCH, NGF, NDF = 64, 2, 1, 1
OFFICIAL_REPO = "lyndonzheng/F-LSeSim"
INIT_SEEDS = {"G": 1, "D": 2}
D_LEFT_OUT = ("final_linear.0.weight",)


def install_draws(stylegan: Any, losses: Any) -> dict[str, list[torch.Tensor]]:
    """Log G's noise maps and the penalty's mixing weights (drawn from the same RNG state the official call uses)."""
    logged: dict[str, list[torch.Tensor]] = {"noise": [], "gp_alpha": []}
    inject = stylegan.NoiseInjection.forward

    def noise_forward(module: Any, image: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        if noise is None:
            noise = image.new_empty(image.shape[0], 1, *image.shape[2:]).normal_()
            logged["noise"].append(noise.clone())
        return inject(module, image, noise=noise)

    stylegan.NoiseInjection.forward = noise_forward
    penalty = losses.cal_gradient_penalty

    def logged_penalty(net: Any, real: torch.Tensor, fake: torch.Tensor, device: Any, **kwargs: Any) -> Any:
        rng = torch.get_rng_state()
        logged["gp_alpha"].append(torch.rand(real.shape[0], 1).reshape(-1).clone())  # its first draw
        torch.set_rng_state(rng)
        return penalty(net, real, fake, device, **kwargs)

    losses.cal_gradient_penalty = logged_penalty
    return logged


def main() -> None:
    root = official_root()
    sys.path.insert(0, str(root))
    torch.set_default_dtype(torch.float64)
    torchvision.models.vgg16 = lambda *a, **k: _TinyVGG()
    for stub in ("h5py", "cv2"):  # imported by modules this step never calls (oa_dataset, util.util)
        sys.modules.setdefault(stub, types.ModuleType(stub))
    from options.train_options import TrainOptions

    from models import create_model, losses, stylegan_networks

    work = Path(tempfile.mkdtemp())
    sys.argv = ["train.py", "--dataroot", str(work), "--model", "sinsc", "--gpu_ids", "-1", "--pool_size", "0",
                "--checkpoints_dir", str(work / "ck"), "--name", "sinsesim", "--ngf", str(NGF), "--ndf", str(NDF),
                "--crop_size", str(SIZE), "--batch_size", str(BATCH), "--display_id", "0"]
    opt = TrainOptions().parse()
    torch.manual_seed(0)
    np.random.seed(0)
    model = create_model(opt)
    for net in (model.netG, model.netD, model.netPre):
        net.double()
    g = torch.Generator().manual_seed(5)
    a_u8 = torch.randint(0, 256, (BATCH, 3, SIZE, SIZE), generator=g, dtype=torch.uint8)
    b_u8 = torch.randint(0, 256, (BATCH, 3, SIZE, SIZE), generator=g, dtype=torch.uint8)
    data = {"A": a_u8.double() / 127.5 - 1, "B": b_u8.double() / 127.5 - 1, "A_paths": [], "B_paths": []}
    model.data_dependent_initialize(data)
    model.setup(opt)
    nets = {"G": model.netG, "D": model.netD}
    for name in nets:
        canonical_init(nets[name], seed=INIT_SEEDS[name])
    buffers = {k: {b: v for b, v in state(net).items() if b not in dict(net.named_parameters())}
               for k, net in nets.items()}
    recorder = Recorder()
    recorder.install(losses)
    logged = install_draws(stylegan_networks, losses)
    model.set_input(data)
    model.optimize_parameters()
    fixture: dict[str, Any] = {
        "official_repo": OFFICIAL_REPO, "official_commit": official_commit(root), "dtype": "float64",
        "options": {k: getattr(opt, k) for k in ("ngf", "ndf", "crop_size", "lr", "beta1", "beta2", "patch_nums",
                                                 "patch_size", "loss_mode", "use_norm", "lambda_spatial",
                                                 "lambda_gradient", "attn_layers", "gan_mode", "pool_size",
                                                 "stylegan2_G_num_downsampling", "T")},
        "images": {"A": a_u8, "B": b_u8},
        "patch_ids": recorder.patch_ids, "jitter_draws": [],
        "draws": logged,
        "losses": {k: float(getattr(model, f"loss_{k}")) for k in ("G_GAN", "G_s", "D_real", "D_fake",
                                                                     "D_Gradient")},
        "fake_B": model.fake_B.detach().clone(),
        "init_seeds": INIT_SEEDS,
        "buffers": buffers,
        # G's gradients and D's weights after its step (less its largest tensor) keep the fixture small
        "after": {"D": {k: v for k, v in state(model.netD).items() if k not in D_LEFT_OUT}},
        "grads": {"G": grads(model.netG)},
    }
    vgg = tiny_vgg_features()
    official_vgg = dict(model.netPre.named_parameters())
    assert all(torch.equal(official_vgg[f"relu{_block(int(k.split('.')[0]))}.{k}"], v.double())
               for k, v in vgg.state_dict().items()), "the official VGG16 is not the tiny one"
    fixture["vgg_features"] = {k: v.double() for k, v in state(vgg).items() if int(k.split(".")[0]) <= 22}
    out = Path(__file__).resolve().parent / "sinsesim.pt"
    torch.save(fixture, out)
    print(f"wrote {out} ({out.stat().st_size} bytes); losses {fixture['losses']}")


if __name__ == "__main__":
    main()
