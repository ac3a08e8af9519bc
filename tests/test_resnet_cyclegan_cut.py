"""ResNet generators, CUT's anti-aliased networks, PatchNCE, netF, the image pool, CycleGAN / CUT / FastCUT steps.

The expected key layouts are written out from the reference definitions (junyanz/pytorch-CycleGAN-and-pix2pix
ResnetGenerator and NLayerDiscriminator; taesungp/contrastive-unpaired-translation with anti-aliasing), layer
by layer, so a released checkpoint's state_dict loads strictly.
"""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from i2i_cli.models.base import Progress, TranslationMethod, set_requires_grad
from i2i_cli.models.image_pool import ImagePool
from i2i_cli.models.losses.patchnce import PatchNCELoss, patch_nce
from i2i_cli.models.networks.antialias import Downsample, Upsample
from i2i_cli.models.networks.patch_sampler import PatchSampleMLP
from i2i_cli.models.networks.patchgan import PatchDiscriminator
from i2i_cli.models.networks.resnet import ResnetGenerator

Shapes = dict[str, tuple[int, ...]]


def _conv(key: str, out_c: int, in_c: int, k: int, bias: bool = True) -> Shapes:
    shapes: Shapes = {f"{key}.weight": (out_c, in_c, k, k)}
    if bias:
        shapes[f"{key}.bias"] = (out_c,)
    return shapes


def _reference_generator(ngf: int, n_blocks: int, antialias: bool) -> Shapes:
    """The reference ResnetGenerator's Sequential, instance norm (no norm parameters, convs with bias)."""
    shapes: Shapes = {}
    i = 0  # ReflectionPad2d(3)
    shapes.update(_conv(f"model.{i + 1}", ngf, 3, 7))
    i += 4  # pad, conv, norm, relu
    for mult in (1, 2):
        shapes.update(_conv(f"model.{i}", ngf * mult * 2, ngf * mult, 3))
        if antialias:  # conv(stride 1), norm, relu, Downsample
            shapes[f"model.{i + 3}.filt"] = (ngf * mult * 2, 1, 3, 3)
            i += 4
        else:  # conv(stride 2), norm, relu
            i += 3
    for _ in range(n_blocks):  # pad, conv, norm, relu, pad, conv, norm
        shapes.update(_conv(f"model.{i}.conv_block.1", ngf * 4, ngf * 4, 3))
        shapes.update(_conv(f"model.{i}.conv_block.5", ngf * 4, ngf * 4, 3))
        i += 1
    for mult in (4, 2):
        if antialias:  # Upsample, conv(stride 1), norm, relu
            shapes[f"model.{i}.filt"] = (ngf * mult, 1, 4, 4)
            shapes.update(_conv(f"model.{i + 1}", ngf * mult // 2, ngf * mult, 3))
            i += 4
        else:  # ConvTranspose2d (in, out, k, k), norm, relu
            shapes[f"model.{i}.weight"] = (ngf * mult, ngf * mult // 2, 3, 3)
            shapes[f"model.{i}.bias"] = (ngf * mult // 2,)
            i += 3
    shapes.update(_conv(f"model.{i + 1}", 3, ngf, 7))  # pad, conv, tanh
    return shapes


def _reference_cut_discriminator(ndf: int) -> Shapes:
    """CUT's NLayerDiscriminator (n_layers 3, instance norm, anti-aliased): conv, lrelu, Downsample, then
    (conv, norm, lrelu, Downsample) x2, conv, norm, lrelu, conv."""
    shapes = _conv("model.0", ndf, 3, 4)
    shapes["model.2.filt"] = (ndf, 1, 3, 3)
    shapes.update(_conv("model.3", ndf * 2, ndf, 4))
    shapes["model.6.filt"] = (ndf * 2, 1, 3, 3)
    shapes.update(_conv("model.7", ndf * 4, ndf * 2, 4))
    shapes["model.10.filt"] = (ndf * 4, 1, 3, 3)
    shapes.update(_conv("model.11", ndf * 8, ndf * 4, 4))
    shapes.update(_conv("model.14", 1, ndf * 8, 4))
    return shapes


def _shapes(module: torch.nn.Module) -> Shapes:
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


@pytest.mark.parametrize("antialias", [False, True])
def test_generator_keys_and_shapes_match_the_reference_and_load_strictly(antialias: bool) -> None:
    net = ResnetGenerator(ngf=64, n_blocks=9, antialias=antialias)
    expected = _reference_generator(64, 9, antialias)
    assert _shapes(net) == expected
    assert list(net.state_dict()) == list(expected)  # same order as the reference's Sequential
    released = {k: torch.randn(s) for k, s in expected.items()}
    net.load_state_dict(released, strict=True)
    assert torch.equal(net.state_dict()["model.1.weight"], released["model.1.weight"])


def test_cut_discriminator_is_antialiased_like_the_reference() -> None:
    assert _shapes(PatchDiscriminator(3, 64, 3, "instance", antialias=True)) == _reference_cut_discriminator(64)
    d = PatchDiscriminator(3, 8, 3, "instance", antialias=True)
    assert d(torch.rand(1, 3, 256, 256)).shape == (1, 1, 30, 30)  # the same 30x30 map as the plain PatchGAN


def test_blur_resampling_keeps_constants_and_halves_or_doubles_the_size() -> None:
    ones = torch.ones(2, 4, 12, 12)
    down, up = Downsample(4), Upsample(4)
    assert torch.allclose(down(ones), torch.ones(2, 4, 6, 6))  # normalised filter, reflect padding
    assert torch.allclose(up(ones), torch.ones(2, 4, 24, 24))  # gain stride**2, replicate padding
    assert down(torch.rand(1, 4, 7, 9)).shape == (1, 4, 4, 5)
    # the blur attenuates the highest frequency: a +-1 checkerboard nearly vanishes
    checker = (torch.arange(12)[:, None] + torch.arange(12)[None, :]) % 2 * 2.0 - 1.0
    assert down(checker.expand(1, 4, 12, 12)).abs()[..., 1:-1, 1:-1].max() < 1e-6


def test_encoder_features_are_the_sequential_outputs_at_the_requested_indices() -> None:
    torch.manual_seed(0)
    g = ResnetGenerator(ngf=8, n_blocks=9, antialias=True).eval()
    x = torch.rand(2, 3, 32, 32)
    feats = g.encode(x, [0, 4, 8, 12, 16])
    assert [tuple(f.shape[1:]) for f in feats] == [(3, 38, 38), (16, 32, 32), (32, 16, 16), (32, 8, 8), (32, 8, 8)]
    assert torch.allclose(feats[-1], g.model[:17](x))
    assert g.encode(x, []) == []
    assert g(x).shape == x.shape


@pytest.mark.parametrize("name", ["cut", "fastcut"])
def test_patchnce_keys_taken_from_the_forward_pass_are_the_encoders_features(name: str) -> None:
    """CUT keeps the real images' encoder features from G's forward pass as PatchNCE's keys (no second
    encoder pass); with the batch concatenated for identity NCE each term gets its own images' features, and
    a flipped pass (FastCUT's equivariance) leaves the keys to the encoder."""
    from i2i_cli.models import registry

    torch.manual_seed(0)
    cls = registry.method_class(name)
    method = cls(dataclasses.replace(cls.config_class(), ngf=4, ndf=4, n_blocks=6, netF_nc=8, num_patches=16)).train()
    batch = {"A": torch.rand(2, 3, 32, 32) * 2 - 1, "B": torch.rand(2, 3, 32, 32) * 2 - 1}
    for flip in (False, True):
        cache: dict[str, object] = {"draws": {"flip": flip}}
        method._forward(batch, cache)
        terms = [("NCE", "A")] + ([("NCE_Y", "B")] if method.config.nce_idt else [])
        for term, domain in terms:
            kept = cache.get(f"keys/{term}")
            if flip and method.config.flip_equivariance:
                assert kept is None
                continue
            expected = method.G.encode(batch[domain], method.layers)
            assert kept is not None and len(kept) == len(expected) == 5
            for a, b in zip(kept, expected):
                torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_patchnce_matches_a_hand_computation() -> None:
    t = 0.07
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])  # one image, two patches, orthogonal features
    loss = patch_nce(q, q.clone(), batch_size=1, temperature=t)
    # logits of patch 0: positive 1, itself as a negative masked to -10, the other patch 0
    expected = -math.log(math.exp(1 / t) / (math.exp(1 / t) + math.exp(-10 / t) + math.exp(0.0)))
    assert torch.allclose(loss, torch.full((2,), expected), atol=1e-6)
    assert torch.allclose(PatchNCELoss(t)(q, q.clone(), 1), loss)


def test_patchnce_takes_negatives_from_the_same_image_only() -> None:
    same = torch.tensor([[1.0, 0.0], [1.0, 0.0]])  # two images, one patch each, identical features
    # were the other image's patch a negative, the loss would be log 2; from the same image only, ~0
    assert patch_nce(same, same.clone(), batch_size=2).max() < 1e-6
    assert torch.allclose(patch_nce(same, same.clone(), batch_size=1), torch.full((2,), math.log(2.0)))


def test_patchnce_is_near_zero_for_matching_patches_and_large_when_shuffled() -> None:
    torch.manual_seed(0)
    sampler = PatchSampleMLP([16], nc=32)
    feat = torch.randn(2, 16, 16, 16)
    k, ids = sampler([feat], num_patches=64)
    q, _ = sampler([feat.clone()], num_patches=64, patch_ids=ids)
    matched = patch_nce(q[0], k[0], batch_size=2).mean()
    shuffled = patch_nce(q[0][torch.randperm(128)], k[0], batch_size=2).mean()
    chance = math.log(64)  # uniform over the positive and 63 negatives
    assert matched < chance / 4 and shuffled > chance
    q[0].sum().backward()  # gradients reach the MLP through the queries
    assert sampler.mlp_0[0].weight.grad is not None


def test_patch_sampler_reuses_ids_and_normalises_rows() -> None:
    torch.manual_seed(0)
    sampler = PatchSampleMLP([3, 16], nc=8)
    assert sorted(sampler.state_dict()) == sorted(
        f"mlp_{i}.{j}.{p}" for i in (0, 1) for j in (0, 2) for p in ("weight", "bias"))
    feats = [torch.rand(2, 3, 6, 6), torch.rand(2, 16, 4, 4)]
    out, ids = sampler(feats, num_patches=20)
    assert [o.shape for o in out] == [(40, 8), (32, 8)]  # 16 < 20 locations in the 4x4 map: all of them
    assert [len(i) for i in ids] == [20, 16] and len(set(ids[0].tolist())) == 20
    assert torch.allclose(out[0].norm(dim=1), torch.ones(40), atol=1e-5)
    again, _ = sampler(feats, num_patches=20, patch_ids=ids)
    assert all(torch.equal(a, b) for a, b in zip(out, again))


def test_image_pool_returns_a_stored_image_with_probability_one_half() -> None:
    torch.manual_seed(1)
    assert torch.equal(ImagePool(0).query(torch.ones(3, 1, 1, 1)), torch.ones(3, 1, 1, 1))
    pool = ImagePool(10)
    pool.query(-torch.ones(10, 1, 1, 1))  # fill
    out = pool.query(torch.arange(1.0, 1001.0).view(1000, 1, 1, 1)).flatten()
    returned_old = (out != torch.arange(1.0, 1001.0)).float().mean().item()
    assert 0.45 < returned_old < 0.55
    assert len(pool.images) == 10


# --- methods, driven by hand as the trainer does -------------------------------------------------------------


def _build(name: str, **overrides: object) -> TranslationMethod:
    from i2i_cli.models import registry

    cls = registry.method_class(name)
    config = dataclasses.replace(cls.config_class(), ngf=8, ndf=8, size=32, load_size=32, batch_size=2,
                                 **overrides)
    return cls(config)


def _train_steps(method: TranslationMethod, steps: int) -> list[dict[str, float]]:
    optimizers = {spec.name: torch.optim.Adam([dict(g) for g in spec.param_groups], lr=spec.lr, betas=spec.betas)
                  for spec in method.optimizers()}
    logged = []
    for step in range(steps):
        batch = {"A": torch.rand(2, 3, 32, 32) * 2 - 1, "B": torch.rand(2, 3, 32, 32) * 2 - 1}
        cache: dict[str, object] = {}
        for phase in method.phases(Progress(step=step, total_steps=steps)):
            frozen = [getattr(method, name) for name in phase.frozen]
            frozen_before = [{k: v.clone() for k, v in net.state_dict().items()} for net in frozen]
            set_requires_grad(frozen, False)
            for name in phase.optimizers:
                optimizers[name].zero_grad(set_to_none=True)
            terms = phase.compute(batch, cache)
            sum(terms.values()).backward()
            for name in phase.optimizers:
                optimizers[name].step()
            set_requires_grad(frozen, True)
            for net, before in zip(frozen, frozen_before):  # a frozen network is left as it was
                assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())
            logged.append({f"{phase.name}/{k}": float(v.detach()) for k, v in terms.items()})
    return logged


def _params(method: TranslationMethod, net: str) -> torch.Tensor:
    return torch.cat([p.detach().flatten().clone() for p in getattr(method, net).parameters()])


@pytest.mark.parametrize(("name", "nets", "terms"), [
    ("cyclegan", ["G_A", "G_B", "D_A", "D_B"],
     {"G/idt_A", "G/idt_B", "G/G_A", "G/G_B", "G/cycle_A", "G/cycle_B", "D/D_A", "D/D_B"}),
    ("cut", ["G", "D", "F"], {"D/D_fake", "D/D_real", "G/G_GAN", "G/NCE", "G/NCE_Y"}),
    ("fastcut", ["G", "D", "F"], {"D/D_fake", "D/D_real", "G/G_GAN", "G/NCE"}),
])
def test_a_few_steps_train_every_network_with_finite_losses(name: str, nets: list[str], terms: set[str]) -> None:
    torch.manual_seed(0)
    # CUT with the real 9 blocks (nce_layers 12, 16 are residual blocks); the others with 2 to stay fast
    extra = {"n_blocks": 9, "num_patches": 32} if name == "cut" else {"n_blocks": 2, "num_patches": 32}
    if name == "cyclegan":
        extra.pop("num_patches")
    method = _build(name, **extra)
    before = {net: _params(method, net) for net in nets}
    logged = _train_steps(method, 1)
    seen = {k for entry in logged for k in entry}
    assert seen == terms
    assert all(math.isfinite(v) for entry in logged for v in entry.values())
    for net in nets:
        assert not torch.equal(before[net], _params(method, net)), f"{name}: {net} did not change"


def test_cyclegan_translates_both_ways_and_keeps_its_pools_in_the_training_state() -> None:
    torch.manual_seed(0)
    method = _build("cyclegan", n_blocks=2).eval()
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    assert method.two_sided and method.size_multiple == 4
    assert torch.equal(method.translate(x, "AtoB"), method.G_A(x).detach())
    assert torch.equal(method.translate(x, "BtoA"), method.G_B(x).detach())
    assert torch.equal(method.export_module("BtoA")(x), method.G_B(x))
    with pytest.raises(ValueError, match="AtoB or BtoA"):
        method.translate(x, "B2A")
    _train_steps(method.train(), 1)
    state = method.training_state()
    assert state["pool_A"].shape == (2, 3, 32, 32) and state["pool_B"].shape == (2, 3, 32, 32)
    fresh = _build("cyclegan", n_blocks=2)
    fresh.load_training_state(state)
    assert torch.equal(fresh.training_state()["pool_B"], state["pool_B"])


def test_cut_and_fastcut_defaults_are_the_reference_ones() -> None:
    from i2i_cli.models.methods.cut import CUTConfig, FastCUTConfig
    from i2i_cli.models.methods.cyclegan import CycleGANConfig

    cut, fast, cyc = CUTConfig(), FastCUTConfig(), CycleGANConfig()
    assert (cut.lambda_NCE, cut.nce_idt, cut.flip_equivariance, cut.epochs, cut.decay_epochs) == (1.0, True, False,
                                                                                                  400, 200)
    assert (fast.lambda_NCE, fast.nce_idt, fast.flip_equivariance, fast.epochs, fast.decay_epochs) == (10.0, False,
                                                                                                       True, 200, 50)
    for c in (cut, fast):
        assert (c.nce_layers, c.nce_T, c.num_patches, c.netF_nc, c.init_type, c.gan_mode) == (
            "0,4,8,12,16", 0.07, 256, 256, "xavier", "lsgan")
        assert (c.lr, c.beta1, c.beta2, c.antialias, c.antialias_up, c.lambda_GAN) == (2e-4, 0.5, 0.999, True, True,
                                                                                      1.0)
    assert (cyc.lambda_A, cyc.lambda_B, cyc.lambda_identity, cyc.pool_size, cyc.epochs, cyc.decay_epochs) == (
        10.0, 10.0, 0.5, 50, 200, 100)
    assert (cyc.init_type, cyc.gan_mode, cyc.norm, cyc.dropout, cyc.load_size, cyc.size) == (
        "normal", "lsgan", "instance", False, 286, 256)


def test_cut_netf_is_built_eagerly_from_the_encoder_channels() -> None:
    method = _build("cut", n_blocks=9)
    widths = [getattr(method.F, f"mlp_{i}")[0].in_features for i in range(5)]
    assert widths == [3, 16, 32, 32, 32]  # padded input, 2*ngf, 4*ngf, two residual blocks
    assert [spec.name for spec in method.optimizers()] == ["G", "F", "D"]
    assert [p.name for p in method.phases(Progress())] == ["D", "G"]
    assert method.phases(Progress())[1].optimizers == ("G", "F")


def test_fastcut_flips_source_and_output_together() -> None:
    torch.manual_seed(0)
    method = _build("fastcut", n_blocks=2)
    batch = {"A": torch.rand(1, 3, 16, 16) * 2 - 1, "B": torch.rand(1, 3, 16, 16) * 2 - 1}
    flips = []
    with torch.no_grad():
        for _ in range(16):
            cache: dict[str, object] = {}
            method._forward(batch, cache)
            flips.append(cache["flipped"])
            if cache["flipped"]:
                assert torch.allclose(cache["fake_B"], method.G(torch.flip(batch["A"], [3])))
    assert 2 < sum(flips) < 14  # about half of the iterations
    cut = _build("cut", n_blocks=2)
    cache = {}
    cut._forward(batch, cache)
    assert cache["flipped"] is False and cache["idt_B"].shape == batch["B"].shape
    assert cut.translate(batch["A"]).shape == batch["A"].shape
