"""FSeSim / LSeSim (spatially-correlative loss, learned head) and attention-guided CycleGAN.

VGG16 is a network of the right shape with seeded random weights, loaded through the real path (a file named
like the official one in $I2I_WEIGHTS_DIR). Training steps are driven by hand as the trainer does them.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torchvision

from i2i_cli.data.images import load_image
from i2i_cli.engine.fixed_weights import load_pretrained_modules
from i2i_cli.errors import WeightsError
from i2i_cli.models.base import Progress, TranslationMethod
from i2i_cli.models.losses.spatial_correlative import (
    colour_jitter,
    compare_maps,
    draw_jitter,
    map_distances,
    similarity_infonce,
    similarity_maps,
    spatial_correlative_loss,
    spatial_correlative_map,
    window_indices,
)
from i2i_cli.models.methods.agcyclegan import AGCycleGAN
from i2i_cli.models.methods.sesim import FSeSim, LSeSim
from i2i_cli.models.networks.attention import (
    AttentionGuidedDiscriminator,
    AttentionGuidedGenerator,
    AttentionNetwork,
    Conv2dSame,
    ConvTranspose2dSame,
)
from tests.conftest import tiny_config


@pytest.fixture(scope="module")
def vgg_dir(tmp_path_factory: pytest.TempPathFactory):
    """torchvision's vgg16 file layout: features.N plus classifier keys (which the loader must drop)."""
    folder = tmp_path_factory.mktemp("vgg")
    torch.manual_seed(0)
    state = {f"features.{k}": v for k, v in torchvision.models.vgg16(weights=None).features.state_dict().items()}
    state["classifier.0.weight"] = torch.zeros(4, 4)
    torch.save(state, folder / "vgg16-397923af.pth")
    return folder


def _photo(datasets, size: int = 64) -> torch.Tensor:
    pair = load_image(sorted((datasets["aligned"] / "train").glob("*.png"))[1])
    photo = torch.from_numpy(np.ascontiguousarray(pair[:, pair.shape[1] // 2:])).permute(2, 0, 1)[None]
    photo = photo.float().div(127.5).sub(1)
    return torch.nn.functional.interpolate(photo, size=(size, size), mode="bilinear", align_corners=False)


def _optimizers(method: TranslationMethod) -> dict[str, torch.optim.Optimizer]:
    return {s.name: torch.optim.Adam(s.param_groups, lr=s.lr, betas=s.betas) for s in method.optimizers()}


def _iteration(method: TranslationMethod, batch: dict[str, torch.Tensor], progress: Progress,
               optimizers: dict[str, torch.optim.Optimizer]) -> dict[str, float]:
    """One training iteration as the trainer runs it: per phase freeze, compute, zero, backward, step."""
    cache: dict = {}
    logged: dict[str, float] = {}
    for phase in method.phases(progress):
        frozen = [getattr(method, name) for name in phase.frozen]
        for m in frozen:
            m.requires_grad_(False)
        terms = phase.compute(batch, cache)
        for name in phase.optimizers:
            optimizers[name].zero_grad(set_to_none=True)
        sum(terms.values()).backward()
        for name in phase.optimizers:
            optimizers[name].step()
        for m in frozen:
            m.requires_grad_(True)
        logged.update({k: float(v.detach()) for k, v in terms.items()})
    return logged


def _snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.named_parameters()}


def _changed(module: torch.nn.Module, before: dict[str, torch.Tensor]) -> bool:
    return any(not torch.equal(p, before[k]) for k, p in module.named_parameters())


# ---------------------------------------------------------------------------------------------------------------
# the spatially-correlative loss
def test_loss_is_zero_for_the_same_image_small_for_colour_jitter_and_larger_for_a_shift(datasets, vgg_dir,
                                                                                      monkeypatch):
    monkeypatch.setenv("I2I_WEIGHTS_DIR", str(vgg_dir))
    method = FSeSim(tiny_config("fsesim"))
    used = load_pretrained_modules(method)
    assert used[0].source == "override" and used[0].path.name == "vgg16-397923af.pth"
    x = _photo(datasets)
    shifted = torch.roll(x, shifts=(16, 16), dims=(-2, -1))

    def loss(target: torch.Tensor) -> float:
        torch.manual_seed(1)  # the same query locations for every comparison
        with torch.no_grad():
            return method.spatial_loss(x, target).item()

    shift = loss(shifted)
    assert loss(x) < 1e-6
    # a random VGG is not colour-invariant as the ImageNet one is: jitter mildly, several draws
    for seed in range(4):
        torch.manual_seed(seed)
        mild = {"brightness": 0.2, "contrast": 0.2, "saturation": 0.2, "hue": 0.05}
        jittered = colour_jitter(x, [draw_jitter(mild) for _ in x])
        assert not torch.allclose(jittered, x, atol=0.02)
        assert loss(jittered) < shift / 4, (seed, loss(jittered), shift)


def test_vgg_file_missing_a_layer_is_refused_with_the_file_named(tmp_path, vgg_dir, monkeypatch):
    state = torch.load(vgg_dir / "vgg16-397923af.pth")
    del state["features.10.weight"]
    torch.save(state, tmp_path / "vgg16-397923af.pth")
    monkeypatch.setenv("I2I_WEIGHTS_DIR", str(tmp_path))
    with pytest.raises(WeightsError, match="vgg16-397923af.pth"):
        load_pretrained_modules(FSeSim(tiny_config("fsesim")))


def test_windows_follow_the_official_rule():
    keys = window_indices(6, 6, torch.tensor([0, 35, 14]), 3)
    assert keys.shape == (3, 9) and int(keys.min()) >= 0 and int(keys.max()) <= 35
    assert keys[0].tolist() == [0, 1, 2, 6, 7, 8, 12, 13, 14]  # clamped into the map at the corner
    # a window only when smaller than the map in both dimensions, else the whole map
    assert window_indices(8, 4, torch.tensor([5]), 4).shape == (1, 32)
    assert window_indices(4, 4, torch.tensor([5]), 8).shape == (1, 16)


def test_only_the_target_top_quarter_counts_and_l1_is_scaled():
    target = torch.arange(8.0).flip(0).view(1, 1, 8)  # 7..0: int(8 / 4) + 1 = 3 entries kept (7, 6, 5)
    source = target.clone()
    source[..., 3:] = -5.0  # differs only where the target is below its top quarter
    assert compare_maps(source, target, "cos", use_norm=True).item() == pytest.approx(0.0, abs=1e-6)
    assert compare_maps(source, target, "l1", use_norm=True).item() == pytest.approx(0.0, abs=1e-6)
    source[..., 0] = 6.0  # off by 1 at a kept entry: mean |4 * 1| over 8 entries (scale K / int(K / 4) = 4)
    assert compare_maps(source, target, "l1", use_norm=True).item() == pytest.approx(4.0 / 8)
    distance = 1 - (6 * 7 + 36 + 25) / (math.sqrt(36 + 36 + 25) * math.sqrt(49 + 36 + 25))
    # the official criterion between 1 and the cosine: L1 with use_norm, SmoothL1 (0.5 d^2 below 1) without
    assert compare_maps(source, target, "cos", use_norm=True).item() == pytest.approx(distance, rel=1e-4)
    assert compare_maps(source, target, "cos").item() == pytest.approx(0.5 * distance**2, rel=1e-4)
    far = torch.tensor([[[-1.0, -1.0]]])  # cosine -1 with [1, 1]: distance 2, SmoothL1 2 - 0.5
    assert compare_maps(far, torch.ones(1, 1, 2), "cos", top_fraction=1.0).item() == pytest.approx(1.5)


def test_per_location_map_matches_the_loss_over_every_location():
    torch.manual_seed(0)
    fs, ft = torch.randn(2, 16, 6, 6), torch.randn(2, 16, 6, 6)
    for patch_size in (3, 64):  # windowed and global
        full = spatial_correlative_map(fs, ft, patch_size=patch_size)
        chunked = spatial_correlative_map(fs, ft, patch_size=patch_size, chunk_elements=100)
        assert full.shape == (2, 6, 6) and torch.allclose(full, chunked, atol=1e-6)
        every = spatial_correlative_loss([fs], [ft], num_patches=0, patch_size=patch_size)
        assert full.mean().item() == pytest.approx(every.item(), rel=1e-5)
    # appearance: a per-channel offset of the features changes nothing; with use_norm, neither does a scale
    assert spatial_correlative_map(fs, fs + torch.randn(1, 16, 1, 1)).abs().max().item() < 1e-5
    assert spatial_correlative_map(fs, fs * 3 + 1, use_norm=True).abs().max().item() < 1e-5


def test_infonce_is_the_official_cross_entropy():
    torch.manual_seed(0)
    s, o = torch.randn(1, 2, 5), torch.randn(1, 2, 5)
    t = s + 0.01 * torch.randn(1, 2, 5)
    n = [torch.nn.functional.normalize(m[0], dim=-1) for m in (s, t, o)]
    logits = torch.cat([n[0] @ n[1].t(), n[0] @ n[2].t(), n[1] @ n[2].t()], dim=1) / 0.07
    expected = torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1]))
    assert similarity_infonce(s, t, o).item() == pytest.approx(expected.item(), rel=1e-5)
    assert similarity_infonce(s, t, o) < similarity_infonce(s, torch.randn(1, 2, 5), o)


def test_similarity_maps_global_and_windowed_agree_when_the_window_covers_the_map():
    torch.manual_seed(0)
    feat, ids = torch.randn(1, 8, 5, 5), torch.tensor([0, 7, 24])
    assert torch.allclose(similarity_maps(feat, ids, 5, use_norm=True), similarity_maps(feat, ids, 64, use_norm=True))
    plain = similarity_maps(feat, ids, 64)  # official default: tanh(dot / 10) of features / sqrt(C)
    assert plain.abs().max() < 1 and map_distances(plain, plain).abs().max() < 1e-6


# ---------------------------------------------------------------------------------------------------------------
# FSeSim / LSeSim training steps
def test_lsesim_head_loss_changes_only_the_head(datasets, vgg_dir, monkeypatch):
    monkeypatch.setenv("I2I_WEIGHTS_DIR", str(vgg_dir))
    torch.manual_seed(0)
    method = LSeSim(tiny_config("lsesim"))
    load_pretrained_modules(method)
    phases = method.phases(Progress())
    assert [p.name for p in phases] == ["head", "D", "G"] and phases[0].optimizers == ("head",)
    x = _photo(datasets, 32)
    batch = {"A": x, "B": torch.flip(x, [-1])}
    optimizers = _optimizers(method)
    before = {name: _snapshot(getattr(method, name)) for name in ("head", "G", "D", "vgg")}
    terms = phases[0].compute(batch, {})
    assert set(terms) == {"head_NCE"} and math.isfinite(terms["head_NCE"].item())
    optimizers["head"].zero_grad()
    terms["head_NCE"].backward()
    with_grad = {n for n, p in method.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert with_grad and all(n.startswith("head.") for n in with_grad)
    optimizers["head"].step()
    assert _changed(method.head, before["head"])
    assert not any(_changed(getattr(method, n), before[n]) for n in ("G", "D", "vgg"))


@pytest.mark.parametrize("name, extra", [("fsesim", {}), ("lsesim", {"lambda_identity": 1.0, "lambda_spatial_idt": 1.0,
                                                                      "loss_mode": "l1", "patch_size": 4})])
def test_sesim_steps_are_finite_and_train_g(datasets, vgg_dir, monkeypatch, name, extra):
    monkeypatch.setenv("I2I_WEIGHTS_DIR", str(vgg_dir))
    torch.manual_seed(0)
    method = (FSeSim if name == "fsesim" else LSeSim)(tiny_config(name, **extra))
    load_pretrained_modules(method)
    x = _photo(datasets, 32)
    batch = {"A": x, "B": x.flip(-2)}
    before = _snapshot(method.G)
    logged = _iteration(method, batch, Progress(), _optimizers(method))
    assert logged and all(math.isfinite(v) for v in logged.values()), logged
    assert _changed(method.G, before)
    if extra:
        assert {"idt_B", "G_spatial_idt", "head_NCE"} <= set(logged)
    assert "vgg.features.0.weight" not in method.saved_state_dict()
    assert method.translate(x).shape == x.shape


# ---------------------------------------------------------------------------------------------------------------
# attention-guided CycleGAN
def test_attention_network_gives_a_mask_at_the_input_size_and_the_composite_keeps_x_where_it_is_zero():
    torch.manual_seed(0)
    net = AttentionNetwork(8)
    for size in (32, 48):
        m = net(torch.rand(2, 3, size, size) * 2 - 1)
        assert m.shape == (2, 1, size, size) and 0 <= float(m.min()) and float(m.max()) <= 1
    method = AGCycleGAN(tiny_config("agcyclegan"))
    with torch.no_grad():
        last = method.Att_A.net[-2]
        last.weight.zero_()
        last.bias.fill_(-100.0)  # sigmoid(-100) == 0 in float32: nothing attended
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    assert torch.equal(method.attention_mask(x), torch.zeros(1, 1, 32, 32))
    assert torch.allclose(method.translate(x), x) and torch.allclose(method.export_module()(x), x)


def test_discriminator_norm_switch():
    torch.manual_seed(0)
    disc = AttentionGuidedDiscriminator(3, 8)
    x = torch.randn(1, 3, 32, 32)
    with_norm = disc(x)
    disc.normalise = False
    assert with_norm.shape == disc(x).shape and not torch.allclose(with_norm, disc(x))


def test_agcyclegan_steps_train_attention_until_the_switch_then_freeze_it():
    torch.manual_seed(0)
    method = AGCycleGAN(tiny_config("agcyclegan"))
    batch = {"A": torch.rand(2, 3, 32, 32) * 2 - 1, "B": torch.rand(2, 3, 32, 32) * 2 - 1}
    optimizers = _optimizers(method)
    early, late = Progress(epoch=10, total_epochs=100), Progress(epoch=40, total_epochs=100)
    assert [p.name for p in method.phases(early)] == ["G_A", "D_A", "G_B", "D_B"]
    assert method.switched(Progress(epoch=3.0, total_epochs=10)) and not method.switched(Progress(epoch=2.9, total_epochs=10))

    att, others = _snapshot(method.Att_A), {n: _snapshot(getattr(method, n)) for n in ("G_A", "D_A", "G_B", "D_B")}
    logged = _iteration(method, batch, early, optimizers)
    assert set(logged) == {"G_A_GAN", "G_A_cycle", "D_A", "G_B_GAN", "G_B_cycle", "D_B"}
    assert all(math.isfinite(v) for v in logged.values())
    assert _changed(method.Att_A, att) and all(_changed(getattr(method, n), s) for n, s in others.items())
    assert method.D_A.normalise and len(method.pool_B.images) == 2 and method.pool_B.images[0].shape[1] == 4

    att = {n: _snapshot(getattr(method, n)) for n in ("Att_A", "Att_B")}
    g = _snapshot(method.G_A)
    logged = _iteration(method, batch, late, optimizers)
    assert all(math.isfinite(v) for v in logged.values())
    assert not any(_changed(getattr(method, n), s) for n, s in att.items())
    assert _changed(method.G_A, g) and not method.D_A.normalise and not method.D_B.normalise


def _tf_same_reference(x: torch.Tensor, weight: torch.Tensor, stride: int) -> torch.Tensor:
    """TensorFlow's documented "SAME": out = ceil(n / s); pad total max((out - 1) s + k - n, 0), of which
    total // 2 before and the rest after (zeros), then a VALID convolution."""
    k = weight.shape[-1]
    pads = []
    for n in (x.shape[-1], x.shape[-2]):  # F.pad takes the last dimension first
        out = -(-n // stride)
        total = max((out - 1) * stride + k - n, 0)
        pads += [total // 2, total - total // 2]
    return torch.nn.functional.conv2d(torch.nn.functional.pad(x, pads), weight, stride=stride)


@pytest.mark.parametrize("size", [8, 12, 32])
def test_strided_convolutions_pad_as_tensorflow_same(size):
    torch.manual_seed(0)
    conv = Conv2dSame(3, 4, 3, stride=2).requires_grad_(False)
    x = torch.randn(2, 3, size, size)
    expected = _tf_same_reference(x, conv.weight, 2) + conv.bias.view(1, -1, 1, 1)
    assert torch.allclose(conv(x), expected, atol=1e-6)
    # nothing before, one row and column after: PyTorch's symmetric padding 1 gives a shifted result
    assert not torch.allclose(conv(x), torch.nn.functional.conv2d(x, conv.weight, conv.bias, 2, 1), atol=1e-3)
    # the transposed convolution is the adjoint of that convolution (TensorFlow's definition of it)
    up = ConvTranspose2dSame(4, 3, 3, stride=2).requires_grad_(False)
    z = torch.randn(2, 4, size // 2, size // 2)
    probe = torch.zeros(2, 3, size, size, requires_grad=True)
    (adjoint,) = torch.autograd.grad((_tf_same_reference(probe, up.weight, 2) * z).sum(), probe)
    assert torch.allclose(up(z), adjoint + up.bias.view(1, -1, 1, 1), atol=1e-5)


def test_agcyclegan_generator_and_attention_use_the_official_layers():
    torch.manual_seed(0)
    method = AGCycleGAN(tiny_config("agcyclegan"))
    assert isinstance(method.G_A, AttentionGuidedGenerator) and isinstance(method.Att_A.net[4], Conv2dSame)
    strided = [m for m in method.G_A.modules() if getattr(m, "stride", (1,))[0] == 2]
    assert len(strided) == 4 and all(isinstance(m, (Conv2dSame, ConvTranspose2dSame)) for m in strided)
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    y = method.G_A(x)
    assert y.shape == x.shape and float(y.abs().max()) <= 1
