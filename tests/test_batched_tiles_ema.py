"""Tiles go through the network in batches and EMA updates in one foreach call: same numbers as before."""

from __future__ import annotations

import copy

import pytest
import torch

from i2i_cli.engine.trainer import EMA
from i2i_cli.inference import run_tiled, translate_tiles
from i2i_cli.models.networks.common import with_per_image_batchnorm
from i2i_cli.models.networks.resnet import ResnetGenerator
from i2i_cli.models.networks.unet import UnetGenerator


class _Translator:
    """The interface run_tiled uses: a callable network and the size its inputs must be a multiple of."""

    def __init__(self, net: torch.nn.Module, size_multiple: int) -> None:
        self.net, self.size_multiple = net.eval(), size_multiple

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _networks() -> dict[str, _Translator]:
    torch.manual_seed(0)
    return {"resnet_instance_norm": _Translator(ResnetGenerator(ngf=8, n_blocks=2), 4),
            "unet_per_image_batchnorm": _Translator(with_per_image_batchnorm(
                UnetGenerator(num_downs=5, ngf=8, norm="batch")), 32)}


def _tiled_both_ways(translator: _Translator, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(batched, one forward per tile as before) outputs of run_tiled."""
    import i2i_cli.inference.tiling as tiling

    original = tiling.translate_tiles
    try:
        tiling.translate_tiles = lambda t, patches: original(t, patches, per_forward=1)
        one_by_one = run_tiled(translator, x, 64, 16)
    finally:
        tiling.translate_tiles = original
    return run_tiled(translator, x, 64, 16), one_by_one


@pytest.mark.parametrize("name", ["resnet_instance_norm", "unet_per_image_batchnorm"])
@pytest.mark.parametrize("shape", [(1, 3, 96, 128), (2, 3, 64, 100)])
def test_batched_tiles_equal_one_forward_per_tile_bit_for_bit(name, shape):
    """Bit for bit with batch-invariant kernels (oneDNN off). oneDNN's convolutions round differently at
    other batch sizes (~1e-7 relative, as for whole images at another --batch-size): within 1e-5 there."""
    translator = _networks()[name]
    x = torch.rand(shape, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.backends.mkldnn.flags(enabled=False):
        batched, one_by_one = _tiled_both_ways(translator, x)
    assert torch.equal(batched, one_by_one)
    batched, one_by_one = _tiled_both_ways(translator, x)
    assert (batched - one_by_one).abs().max() < 1e-5


def test_translate_tiles_bounds_the_batch_and_keeps_the_order():
    calls: list[int] = []

    class Counting(_Translator):
        def __call__(self, x: torch.Tensor) -> torch.Tensor:
            calls.append(x.shape[0])
            return x * 2

    patches = [torch.full((1, 3, 8, 8), float(i)) for i in range(11)] + [torch.zeros(1, 3, 8, 4)]
    out = translate_tiles(Counting(torch.nn.Identity(), 4), patches, per_forward=4)
    assert calls == [4, 4, 3, 1]  # same-shape patches batched, at most 4 per forward
    assert all(torch.equal(o, p * 2) for o, p in zip(out, patches))


def test_ema_foreach_lerp_equals_per_tensor_lerp():
    class Method:
        def __init__(self) -> None:
            torch.manual_seed(0)
            self.G = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Conv2d(4, 3, 1))

    method = Method()
    ema = EMA(method, ["G"], 0.999)
    expected = copy.deepcopy(ema.copies["G"])
    for step in range(3):
        with torch.no_grad():
            for p in method.G.parameters():
                p.add_(torch.randn_like(p) * 0.1)
            method.G[1].running_mean.add_(0.5)
        ema.update(method)
        with torch.no_grad():  # the per-tensor update it replaces
            for p_ema, p in zip(expected.parameters(), method.G.parameters()):
                p_ema.lerp_(p, 1.0 - 0.999)
            for b_ema, b in zip(expected.buffers(), method.G.buffers()):
                b_ema.copy_(b)
        for (k, a), b in zip(ema.copies["G"].state_dict().items(), expected.state_dict().values()):
            assert torch.equal(a, b), (step, k)
