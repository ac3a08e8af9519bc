"""Record tests/golden/cyclegan.pt from junyanz/pytorch-CycleGAN-and-pix2pix (runs outside CI).

    I2I_OFFICIAL_JZ=/path/to/pytorch-CycleGAN-and-pix2pix python tests/golden/record_cyclegan.py

The checkout's models/cycle_gan_model.py (CycleGANModel), networks.py and util/image_pool.py are imported
and one `optimize_parameters()` is run: resnet_6blocks, ngf = ndf = 2, instance norm, no dropout, lsgan,
lambda_A = lambda_B = 10, lambda_identity 0.5, 32 px, batch 2, and pool_size 1, so that the first step
already draws from the pools (the second image of each batch meets a full pool). The pools draw with
Python's `random`; the recorder logs those calls and saves the resulting pick per image (-1: the image
itself, k: stored image k), which i2i replays (ImagePool.query_with_picks). The Python seed is chosen so
that one pool swaps and the other keeps. If the checkout is not a git clone, give its commit in
I2I_OFFICIAL_JZ_COMMIT.
"""

from __future__ import annotations

import argparse
import random
from typing import Any

import torch
from recording_cut_cyclegan_pix2pix import (
    after_step,
    images_u8,
    official_checkout,
    round_weights_to_half,
    save,
    to_float,
)

SIZE, BATCH, NGF, NDF, POOL = 32, 2, 2, 2, 1


def options() -> argparse.Namespace:
    return argparse.Namespace(
        input_nc=3, output_nc=3, ngf=NGF, ndf=NDF, netG="resnet_6blocks", netD="basic", n_layers_D=3,
        norm="instance", no_dropout=True, init_type="normal", init_gain=0.02, gpu_ids=[], isTrain=True,
        checkpoints_dir="/tmp", name="golden_cyclegan", preprocess="resize_and_crop", pool_size=POOL,
        gan_mode="lsgan", lr=0.0002, beta1=0.5, lambda_A=10.0, lambda_B=10.0, lambda_identity=0.5,
        direction="AtoB")


def swap_then_keep_seed() -> int:
    """A Python seed whose first pool draw swaps (uniform > 0.5, then randint(0, 0)) and whose second keeps."""
    for seed in range(1000):
        r = random.Random(seed)
        if r.uniform(0, 1) > 0.5:
            r.randint(0, POOL - 1)
            if r.uniform(0, 1) <= 0.5:
                return seed
    raise RuntimeError("no seed found")


def recording_pool(pool: Any, calls: list[tuple[str, float]], picks: list[int]) -> None:
    """Log the picks of `pool.query` from the Python random calls it makes."""
    query = pool.query

    def logged(images: torch.Tensor) -> torch.Tensor:
        start, filled = len(calls), pool.num_imgs
        out = query(images)
        made = iter(calls[start:])
        for _ in range(images.shape[0]):
            if filled < pool.pool_size:
                filled += 1
                picks.append(-1)
                continue
            _, p = next(made)
            picks.append(int(next(made)[1]) if p > 0.5 else -1)
        return out

    pool.query = logged


def main() -> None:
    _, commit = official_checkout("I2I_OFFICIAL_JZ")
    import util.image_pool as image_pool
    from models.cycle_gan_model import CycleGANModel

    calls: list[tuple[str, float]] = []

    class LoggedRandom:
        def uniform(self, a: float, b: float) -> float:
            calls.append(("uniform", value := random.uniform(a, b)))
            return value

        def randint(self, a: int, b: int) -> int:
            calls.append(("randint", value := random.randint(a, b)))
            return value

    image_pool.random = LoggedRandom()
    torch.manual_seed(0)
    model = CycleGANModel(options())
    nets = {"G_A": model.netG_A, "G_B": model.netG_B, "D_A": model.netD_A, "D_B": model.netD_B}
    init = {k: round_weights_to_half(net) for k, net in nets.items()}
    picks: dict[str, list[int]] = {"pool_B": [], "pool_A": []}
    recording_pool(model.fake_B_pool, calls, picks["pool_B"])  # i2i's pool_B: generated B images, for D_A
    recording_pool(model.fake_A_pool, calls, picks["pool_A"])

    g = torch.Generator().manual_seed(5)
    a_u8, b_u8 = images_u8(g, BATCH, 3, SIZE, SIZE), images_u8(g, BATCH, 3, SIZE, SIZE)
    model.set_input({"A": to_float(a_u8), "B": to_float(b_u8), "A_paths": [], "B_paths": []})
    random.seed(swap_then_keep_seed())
    model.optimize_parameters()
    assert picks == {"pool_B": [-1, 0], "pool_A": [-1, -1]}, picks

    names = ["D_A", "G_A", "cycle_A", "idt_A", "D_B", "G_B", "cycle_B", "idt_B"]
    save({
        "official_repo": "https://github.com/junyanz/pytorch-CycleGAN-and-pix2pix", "official_commit": commit,
        "config": {"size": SIZE, "batch_size": BATCH, "ngf": NGF, "ndf": NDF, "n_blocks": 6, "n_layers_D": 3,
                   "norm": "instance", "dropout": False, "gan_mode": "lsgan", "lambda_A": 10.0, "lambda_B": 10.0,
                   "lambda_identity": 0.5, "pool_size": POOL, "lr": 0.0002, "beta1": 0.5, "beta2": 0.999,
                   "init_type": "normal", "init_gain": 0.02},
        "inputs": {"A_u8": a_u8, "B_u8": b_u8},
        "draws": picks,
        "init": init,
        "outputs": {k: getattr(model, k).detach().clone() for k in ("fake_B", "fake_A")},  # rec_*: cycle losses
        "losses": {k: float(getattr(model, f"loss_{k}")) for k in names},
        "after": {k: after_step(net, init[k]) for k, net in nets.items()},
    }, "cyclegan")


if __name__ == "__main__":
    main()
