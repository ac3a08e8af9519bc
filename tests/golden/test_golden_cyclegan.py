"""CycleGAN against junyanz/pytorch-CycleGAN-and-pix2pix: one training iteration from the official weights.

Fixture made by record_cyclegan.py (ResNet-6 generators, ngf = ndf = 2, instance norm, lsgan, cycle 10,
identity 0.5, 32 px, batch 2, pool_size 1). The pools are already full for the second image of each batch,
so the official code drew from them (Python's `random`): the fixture holds the picks (pool_B swapped with
its stored image, pool_A kept the new one) and i2i replays them through the phase cache (models/draws.py).
Outputs and losses to 1e-6; gradients to 1e-5 of their module's largest; weights after one Adam step to
1e-5, except elements whose gradient is ~0, where Adam's first step takes a round-off sign.
"""

from __future__ import annotations

import pytest
import torch

from tests.golden.golden_fixtures import assert_close
from tests.golden.replay_cut_cyclegan_pix2pix import (
    assert_networks_after_step,
    build,
    load,
    to_float,
    train_iteration,
)


def test_cyclegan_iteration_equals_the_official_one() -> None:
    fixture = load("cyclegan")
    method = build("cyclegan", fixture)
    batch = {"A": to_float(fixture["inputs"]["A_u8"]), "B": to_float(fixture["inputs"]["B_u8"])}
    cache: dict[str, object] = {"draws": {k: list(v) for k, v in fixture["draws"].items()}}
    terms = train_iteration(method, batch, cache)

    for name in ("fake_B", "fake_A"):
        assert_close(cache[name].detach(), fixture["outputs"][name], what=name)
    losses = fixture["losses"]
    for name in ("G_A", "G_B", "cycle_A", "cycle_B", "idt_A", "idt_B", "D_A", "D_B"):
        assert_close(terms[name], torch.tensor(losses[name]), what=name)
    assert_networks_after_step(method, fixture)


def test_cyclegan_records_the_pool_picks_it_draws() -> None:
    fixture = load("cyclegan")
    method = build("cyclegan", fixture)
    batch = {"A": to_float(fixture["inputs"]["A_u8"]), "B": to_float(fixture["inputs"]["B_u8"])}
    cache: dict[str, object] = {}
    train_iteration(method, batch, cache)
    drawn = cache["draws"]
    assert set(drawn) == {"pool_A", "pool_B"}
    for picks in drawn.values():
        assert picks[0] == -1 and picks[1] in (-1, 0)  # the first image fills the pool of one


def test_a_pick_for_a_filling_pool_is_refused() -> None:
    from i2i_cli.models.image_pool import ImagePool

    with pytest.raises(ValueError, match="still filling"):
        ImagePool(2).query_with_picks(torch.zeros(1, 3, 4, 4), [0])
