"""StarGAN v2: styles change outputs, seeds reproduce, EMA is what translate loads, reference-guided CLI."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from i2i_cli.data.images import load_image
from i2i_cli.engine.checkpoint import latest_checkpoint, load_for_inference, load_tensors
from i2i_cli.engine.trainer import TrainOptions, train
from i2i_cli.errors import CheckpointError
from i2i_cli.main import app
from i2i_cli.models.base import Progress
from i2i_cli.models.methods.starganv2 import StarGANv2, StarGANv2Config
from i2i_cli.models.networks.stargan_v2 import Discriminator, Generator, MappingNetwork, StyleEncoder
from tests.conftest import tiny_config

runner = CliRunner()


@pytest.fixture(scope="module")
def run(datasets, tmp_path_factory):
    out = tmp_path_factory.mktemp("sg2") / "run"
    train("starganv2", tiny_config("starganv2"), TrainOptions(data=datasets["domains"], out=out, steps=3, device="cpu"))
    return out


# The reference's module trees (clovaai/stargan-v2 core/model.py), written out as facts: at img_size 256 the
# widths start at 2**14 // 256 = 64 and double up to 512.
OFFICIAL_256_WIDTHS = [64, 128, 256, 512, 512, 512, 512]


def _resblk_keys(prefix: str, normalize: bool, learned_sc: bool) -> set[str]:
    keys = {f"{prefix}.{conv}.{p}" for conv in ("conv1", "conv2") for p in ("weight", "bias")}
    if normalize:
        keys |= {f"{prefix}.{norm}.{p}" for norm in ("norm1", "norm2") for p in ("weight", "bias")}
    if learned_sc:
        keys.add(f"{prefix}.conv1x1.weight")
    return keys


def _adain_keys(prefix: str, learned_sc: bool) -> set[str]:
    keys = {f"{prefix}.{conv}.{p}" for conv in ("conv1", "conv2") for p in ("weight", "bias")}
    keys |= {f"{prefix}.{norm}.fc.{p}" for norm in ("norm1", "norm2") for p in ("weight", "bias")}
    if learned_sc:
        keys.add(f"{prefix}.conv1x1.weight")
    return keys


def official_generator_keys(n_down: int) -> set[str]:
    """encode: n_down down-sampling ResBlks then 2 bottlenecks; decode: the mirror (bottlenecks first)."""
    widths = OFFICIAL_256_WIDTHS[: n_down + 1]
    keys = {"from_rgb.weight", "from_rgb.bias", "to_rgb.0.weight", "to_rgb.0.bias", "to_rgb.2.weight", "to_rgb.2.bias"}
    for i in range(n_down + 2):
        learned = i < n_down and widths[i] != widths[i + 1]
        keys |= _resblk_keys(f"encode.{i}", True, learned)
        keys |= _adain_keys(f"decode.{n_down + 1 - i}", learned)
    return keys


def official_trunk_keys(prefix: str) -> set[str]:
    """Conv, log2(256) - 2 = 6 down-sampling ResBlks (no norm), LeakyReLU, 4x4 conv at index 8."""
    keys = {f"{prefix}.0.weight", f"{prefix}.0.bias", f"{prefix}.8.weight", f"{prefix}.8.bias"}
    for i in range(6):
        keys |= _resblk_keys(f"{prefix}.{i + 1}", False, OFFICIAL_256_WIDTHS[i] != OFFICIAL_256_WIDTHS[i + 1])
    return keys


def test_key_names_and_shapes_are_the_official_ones():
    with torch.device("meta"):  # shapes and names only: no memory for the 256 px networks
        g = Generator(256, 64, 512).state_dict()
        g_hpf = Generator(256, 64, 512, w_hpf=1.0).state_dict()
        f = MappingNetwork(16, 64, 3).state_dict()
        e = StyleEncoder(256, 64, 3).state_dict()
        d = Discriminator(256, 3).state_dict()
    assert set(g) == official_generator_keys(4)
    assert set(g_hpf) == official_generator_keys(5)  # one more down/up pair; the filter is not saved
    assert g["from_rgb.weight"].shape == (64, 3, 3, 3) and g["to_rgb.2.weight"].shape == (3, 64, 1, 1)
    assert g["encode.3.conv1.weight"].shape == (512, 512, 3, 3) and g["decode.0.norm1.fc.weight"].shape == (1024, 64)
    assert g["decode.5.conv1x1.weight"].shape == (64, 128, 1, 1)

    linear = {0, 2, 4, 6}
    assert set(f) == ({f"shared.{i}.{p}" for i in linear for p in ("weight", "bias")}
                      | {f"unshared.{d}.{i}.{p}" for d in range(3) for i in linear for p in ("weight", "bias")})
    assert f["shared.0.weight"].shape == (512, 16) and f["unshared.2.6.weight"].shape == (64, 512)

    assert set(e) == official_trunk_keys("shared") | {f"unshared.{k}.{p}" for k in range(3) for p in ("weight", "bias")}
    assert e["shared.8.weight"].shape == (512, 512, 4, 4) and e["unshared.1.weight"].shape == (64, 512)
    assert set(d) == official_trunk_keys("main") | {"main.10.weight", "main.10.bias"}
    assert d["main.10.weight"].shape == (3, 512, 1, 1)


def _tiny_method(**extra):
    extra.setdefault("fan_width", 16)  # a small stand-in FAN where w_hpf > 0
    return StarGANv2(tiny_config("starganv2", **extra), domains=["day", "dusk", "night"])


def _batch(n: int = 2, size: int = 32) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    images = {k: torch.rand(n, 3, size, size, generator=g) * 2 - 1 for k in ("x", "ref", "ref2")}
    return {**images, "y": torch.tensor([0, 1]), "y_ref": torch.tensor([2, 0])}


def test_hand_driven_iterations_train_every_network_with_finite_losses():
    torch.manual_seed(0)
    method = _tiny_method()
    specs = method.optimizers()
    assert [s.name for s in specs] == ["G", "F", "E", "D"]
    assert {s.name: s.lr for s in specs} == {"G": 1e-4, "F": 1e-6, "E": 1e-4, "D": 1e-4}
    optimizers = {s.name: torch.optim.Adam(s.param_groups, lr=s.lr, betas=s.betas, weight_decay=s.weight_decay)
                  for s in specs}
    before = {k: v.clone() for k, v in method.state_dict().items()}
    batch = _batch()
    for step in range(2):
        phases = method.phases(Progress(step=step, total_steps=10))
        assert [p.name for p in phases] == ["D_latent", "D_ref", "G_latent", "G_ref"]
        cache: dict = {}
        for phase in phases:
            losses = phase.compute(batch, cache)
            assert all(torch.isfinite(v) for v in losses.values()), (phase.name, losses)
            if phase.name.startswith("D"):
                assert losses[phase.name.replace("D_", "R1_")] > 0
            else:  # the diversity term is subtracted: more different outputs lower the loss
                assert losses[phase.name.replace("G_", "G_ds_")] <= 0
            for name in phase.optimizers:
                optimizers[name].zero_grad(set_to_none=True)
            sum(losses.values()).backward()
            for name in phase.optimizers:
                optimizers[name].step()
        assert set(cache) == {"z", "z2"}  # one pair of latent codes shared by D_latent and G_latent
    for net in ("G", "F", "E", "D"):
        changed = [k for k in before if k.startswith(net + ".") and not torch.equal(before[k], method.state_dict()[k])]
        assert changed, f"{net} did not change"


def test_diversity_weight_decays_linearly_scaled_to_the_run_length():
    method = _tiny_method(lambda_ds=2.0)
    assert method.lambda_ds_at(Progress(step=0, total_steps=1000)) == 2.0
    assert method.lambda_ds_at(Progress(step=500, total_steps=1000)) == pytest.approx(1.0)
    assert method.lambda_ds_at(Progress(step=1000, total_steps=1000)) == 0.0
    half = _tiny_method(ds_iter=50_000)  # decays over half of the run, as 50k of the reference's 100k
    assert half.lambda_ds_at(Progress(step=250, total_steps=1000)) == pytest.approx(0.5)
    assert half.lambda_ds_at(Progress(step=600, total_steps=1000)) == 0.0


def test_defaults_are_the_reference_ones():
    c = StarGANv2Config()
    assert (c.size, c.batch_size, c.total_iters, c.ds_iter, c.epochs, c.decay_epochs) == (256, 8, 100_000, 100_000, 0, 0)
    assert (c.lr, c.f_lr, c.beta1, c.beta2, c.weight_decay) == (1e-4, 1e-6, 0.0, 0.99, 1e-4)
    assert (c.style_dim, c.latent_dim, c.w_hpf, c.ema_beta, c.random_resized_crop) == (64, 16, 0.0, 0.999, 0.5)
    assert (c.lambda_reg, c.lambda_sty, c.lambda_ds, c.lambda_cyc) == (1.0, 1.0, 1.0, 1.0)
    method = _tiny_method()
    assert method.ema_networks() == ["G", "F", "E"]
    assert method.accepts[0] == "domains" and method.config.data_spec().random_resized_crop == 0.5


def test_high_pass_skips_change_the_output_only_when_masks_are_given():
    torch.manual_seed(0)
    method = _tiny_method(size=64, w_hpf=1.0).eval()
    assert method.size_multiple == 2 ** 3  # log2(64) - 4 + 1 down-sampling blocks
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    style = method.style_from_latent(torch.randn(1, method.latent_dim), torch.tensor([1]))
    plain = method.G(x, style)
    masks = (torch.rand(1, 1, 64, 64), torch.rand(1, 1, 64, 64))
    assert (method.translate(x, style=style, masks=masks) - plain).abs().mean() > 1e-4
    # without given masks, translation computes the FAN's own: the same as passing them
    own = method.fan.face_masks(x)
    assert torch.equal(method.translate(x, style=style), method.G(x, style, own))


def test_export_modules_are_pure_copies_of_the_networks():
    method = _tiny_method().eval()
    x, ref, z, y = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32), torch.randn(2, 8), torch.tensor([0, 2])
    encoder, mapping = method.export_module(kind="style_encoder"), method.export_module(kind="mapping")
    generator = method.export_module(kind="generator")
    assert torch.equal(encoder(ref, y), method.style_from_reference(ref, y))
    assert torch.equal(mapping(z, y), method.style_from_latent(z, y))
    style = mapping(z, y)
    assert torch.equal(generator(x, style), method.translate(x, style=style))
    with pytest.raises(ValueError, match="generator, style_encoder, mapping"):
        method.export_module(kind="discriminator")


def test_two_references_give_clearly_different_outputs_and_seeds_reproduce(run):
    method = load_for_inference(run).method
    torch.manual_seed(0)
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    refs = torch.rand(2, 3, 32, 32) * 2 - 1
    domain = torch.tensor([1, 1])
    styles = method.style_from_reference(refs, domain)
    out = method.translate(x.expand(2, -1, -1, -1), style=styles)
    assert (out[0] - out[1]).abs().mean() > 1e-3
    z = torch.randn(1, method.latent_dim, generator=torch.Generator().manual_seed(5))
    a = method.translate(x, style=method.style_from_latent(z, domain[:1]))
    b = method.translate(x, style=method.style_from_latent(z.clone(), domain[:1]))
    assert torch.equal(a, b)


def test_translate_loads_the_ema_weights(run):
    ckpt = latest_checkpoint(run)
    live, ema = load_tensors(ckpt / "weights.safetensors"), load_tensors(ckpt / "ema.safetensors")
    key = "G.from_rgb.weight"
    assert not torch.equal(live[key], ema[key])
    loaded = load_for_inference(run)
    assert loaded.used_ema and torch.equal(loaded.method.state_dict()[key], ema[key])
    assert {k.split(".")[0] for k in ema} == set(loaded.method.ema_networks()) == {"G", "F", "E"}


def test_reference_and_latent_guided_translation_from_the_cli(run, datasets, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 36, 3), dtype=np.uint8)).save(src / "cat.png")
    refs = datasets["domains"] / "val" / "dusk"
    result = runner.invoke(app, ["translate", "--checkpoint", str(run), "--style-ref", str(refs), str(src),
                                 str(tmp_path / "ref_out")])
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in (tmp_path / "ref_out").iterdir())
    assert names == [f"cat__{p.stem}.png" for p in sorted(refs.iterdir())]
    assert load_image(tmp_path / "ref_out" / names[0]).shape == (40, 36, 3)

    for out in ("lat1", "lat2"):
        result = runner.invoke(app, ["translate", "--checkpoint", str(run), "--domain", "night", "--num-styles", "3",
                                     "--seed", "7", str(src), str(tmp_path / out)])
        assert result.exit_code == 0, result.output
    files = sorted(p.name for p in (tmp_path / "lat1").iterdir())
    assert files == ["cat__night0.png", "cat__night1.png", "cat__night2.png"]
    for name in files:
        assert np.array_equal(load_image(tmp_path / "lat1" / name), load_image(tmp_path / "lat2" / name))
    assert not np.array_equal(load_image(tmp_path / "lat1" / files[0]), load_image(tmp_path / "lat1" / files[1]))


def test_style_errors_are_one_line(run, datasets, tmp_path):
    src = datasets["domains"] / "val" / "day"
    unknown = runner.invoke(app, ["translate", "--checkpoint", str(run), "--domain", "moon", str(src), str(tmp_path / "o")])
    assert unknown.exit_code == 2 and "day, dusk, night" in unknown.output
    (tmp_path / "refs").mkdir()
    (tmp_path / "refs" / "bad.jpg").write_text("not an image")
    bad = runner.invoke(app, ["translate", "--checkpoint", str(run), "--style-ref", str(tmp_path / "refs" / "bad.jpg"),
                              "--domain", "day", str(src), str(tmp_path / "o")])
    assert bad.exit_code == 2 and "bad.jpg" in bad.output
    unsure = runner.invoke(app, ["translate", "--checkpoint", str(run), "--style-ref", str(src / "00000.png").replace(
        "/day/", "/dusk/"), str(src), str(tmp_path / "o")])
    assert unsure.exit_code == 0, unsure.output  # domain inferred from the reference's folder
    none = runner.invoke(app, ["translate", "--checkpoint", str(run), str(src), str(tmp_path / "o2")])
    assert none.exit_code == 2 and "--style-ref" in none.output


def test_a_reference_given_to_a_model_without_style_encoder_is_refused(datasets, tmp_path):
    train("pix2pix", tiny_config("pix2pix"), TrainOptions(data=datasets["aligned"], out=tmp_path / "p", steps=1,
                                                          device="cpu"))
    src = datasets["domains"] / "val" / "day"
    result = runner.invoke(app, ["translate", "--checkpoint", str(tmp_path / "p"), "--style-ref", str(src / "00000.png"),
                                 str(src), str(tmp_path / "o")])
    assert result.exit_code == 2 and "models that do: starganv2" in result.output


def test_starganv2_resumes_exactly(datasets, tmp_path):
    config = tiny_config("starganv2")
    common = dict(data=datasets["domains"], device="cpu", save_every=2)
    train("starganv2", config, TrainOptions(out=tmp_path / "full", steps=4, **common))

    def stop(event) -> None:
        if event.kind == "checkpoint" and event.step == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train("starganv2", config, TrainOptions(out=tmp_path / "part", steps=4, **common), stop)
    train("starganv2", config, TrainOptions(out=tmp_path / "part", steps=4, resume=True, **common))
    for file in ("weights.safetensors", "ema.safetensors"):
        a = load_tensors(latest_checkpoint(tmp_path / "full") / file)
        b = load_tensors(latest_checkpoint(tmp_path / "part") / file)
        assert all(torch.equal(a[k], b[k]) for k in a), file


# --- CelebA-HQ setting: FAN face masks and high-pass skips -------------------------------------------------

def stand_in_wing(path, width: int = 16, seed: int = 0) -> dict[str, torch.Tensor]:
    """A wing.ckpt in the release layout ({'state_dict': ...}, with a second stack the reference ignores)."""
    from i2i_cli.models.networks.fan import FAN

    torch.manual_seed(seed)
    fan = FAN(width)
    state = fan.state_dict()
    for key, value in state.items():  # non-trivial BatchNorm statistics, so eval-mode normalisation matters
        if key.endswith("running_var"):
            state[key] = torch.rand_like(value) + 0.5
        elif key.endswith("running_mean"):
            state[key] = 0.1 * torch.randn_like(value)
    extra = {"m1.b1_4.conv1.weight": torch.zeros(1), "l1.weight": torch.zeros(1)}
    torch.save({"state_dict": {**state, **extra}}, path)
    return state


def test_the_fan_has_the_release_key_layout_and_ignores_other_stacks(tmp_path):
    from i2i_cli.models.networks.fan import FAN

    with torch.device("meta"):
        state = FAN().state_dict()
    # facts of the reference's FAN (core/wing.py): CoordConv adds 3 channels, one hour-glass of depth 4
    assert state["conv1.conv.weight"].shape == (64, 6, 7, 7)
    assert state["m0.coordconv.conv.weight"].shape == (256, 259, 1, 1)
    assert state["conv2.downsample.2.weight"].shape == (128, 64, 1, 1) and "conv3.downsample.0.weight" not in state
    assert state["m0.b2_plus_1.conv3.weight"].shape == (64, 64, 3, 3) and state["l0.weight"].shape == (99, 256, 1, 1)
    assert {f"m0.b{b}_{level}.bn1.weight" for b in (1, 2, 3) for level in range(1, 5)} <= set(state)
    saved = stand_in_wing(tmp_path / "wing.ckpt")
    fan = FAN(16)
    fan.load_pretrained_state_dict(torch.load(tmp_path / "wing.ckpt", weights_only=True))
    assert all(torch.equal(fan.state_dict()[k], v) for k, v in saved.items())
    with pytest.raises(KeyError, match="missing l0.weight"):
        fan.load_pretrained_state_dict({k: v for k, v in saved.items() if k != "l0.weight"})
    fan.train()
    assert not fan.training and not any(p.requires_grad for p in fan.parameters())  # fixed BatchNorm statistics


def _blob(channel: int, row: int = 128, col: int = 128) -> torch.Tensor:
    """Heat maps with one Gaussian peak in `channel`, every other map flat (cut by the 0.1 threshold)."""
    maps = torch.zeros(1, 98, 256, 256)
    grid = torch.arange(256).float()
    maps[0, channel] = torch.exp(-((grid[:, None] - row) ** 2 + (grid[None, :] - col) ** 2) / 50)
    return maps


def test_masks_have_the_reference_shape_range_and_landmark_groups():
    from i2i_cli.models.networks.fan import FAN, masks_from_heatmaps

    torch.manual_seed(0)
    whole, inner = FAN(16).face_masks(torch.rand(2, 3, 48, 80) * 2 - 1)  # any image size: resized to 256
    assert whole.shape == inner.shape == (2, 1, 256, 256)
    assert 0 <= float(whole.min()) and float(whole.max()) <= 1 and 0 <= float(inner.min()) and float(inner.max()) <= 1
    eye_centre, chin, outer_line, nose_tip = 96, 10, 2, 51
    whole, inner = masks_from_heatmaps(_blob(eye_centre))
    assert whole[0, 0, 128, 128] > 0.99 and inner[0, 0, 128, 128] > 0.99  # eyes are in both masks
    whole, inner = masks_from_heatmaps(_blob(chin))
    assert whole[0, 0, 128, 128] > 0.99 and inner.max() == 0  # the chin only in the first
    whole, inner = masks_from_heatmaps(_blob(outer_line))
    assert whole.max() == 0 and inner.max() == 0  # the outer face line is dropped
    whole, _ = masks_from_heatmaps(_blob(nose_tip + 1, row=128))  # the nose below its tip moves up 4 rows
    assert whole[0, 0, 124, 128] > 0.99 and whole[0, 0, 128, 128] < 0.9


def test_the_masked_generator_equals_a_direct_functional_recomputation():
    import torch.nn.functional as F

    torch.manual_seed(0)
    g = Generator(64, 16, 32, dim_in=16, w_hpf=2.0).eval()
    x, s = torch.rand(1, 3, 64, 64) * 2 - 1, torch.randn(1, 16)
    masks = (torch.rand(1, 1, 256, 256), torch.rand(1, 1, 256, 256))
    laplacian = torch.tensor([[-1.0, -1, -1], [-1, 8, -1], [-1, -1, -1]]) / 2.0
    h, features = g.from_rgb(x), {}
    for block in g.encode:
        features.setdefault(h.shape[2], h)
        h = block(h)
    for block in g.decode:
        h = block(h, s)
        size = h.shape[2]
        if size in (32, 64, 128):
            mask = F.interpolate(masks[0] if size == 32 else masks[1], size=size, mode="bilinear")
            skip = mask * features[size]
            h = h + F.conv2d(skip, laplacian.expand(skip.shape[1], 1, 3, 3), padding=1, groups=skip.shape[1])
    expected = g.to_rgb(h)
    assert torch.allclose(g(x, s, masks), expected, atol=1e-6)
    assert not torch.allclose(g(x, s), expected, atol=1e-3)


@pytest.fixture(scope="module")
def wing_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("wing")
    stand_in_wing(folder / "wing.ckpt")
    return folder


HPF_SETS = ["w_hpf=1", "fan_width=16"]


def test_w_hpf_trains_with_a_frozen_fan_that_is_not_saved(datasets, wing_dir, tmp_path):
    out = tmp_path / "celeba"
    config = tiny_config("starganv2", w_hpf=1.0, fan_width=16)
    train("starganv2", config, TrainOptions(data=datasets["domains"], out=out, steps=2, device="cpu",
                                            weights_dir=wing_dir))
    ckpt = latest_checkpoint(out)
    for file in ("weights.safetensors", "ema.safetensors"):
        assert not [k for k in load_tensors(ckpt / file) if k.startswith("fan.")], file
    method = StarGANv2(config, domains=["a", "b", "c"])
    assert not {id(p) for p in method.fan.parameters()} & {id(p) for spec in method.optimizers()
                                                          for group in spec.param_groups for p in group["params"]}
    import os

    os.environ["I2I_WEIGHTS_DIR"] = str(wing_dir)
    try:
        loaded = load_for_inference(out).method
    finally:
        del os.environ["I2I_WEIGHTS_DIR"]
    saved = torch.load(wing_dir / "wing.ckpt", weights_only=True)["state_dict"]
    assert all(torch.equal(loaded.fan.state_dict()[k], saved[k]) for k in loaded.fan.state_dict())  # not trained


def test_a_missing_wing_ckpt_is_one_line_before_any_work(datasets, tmp_path):
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", "--model", "starganv2", "--data", str(datasets["domains"]), "--out",
                                 str(out), "--steps", "1", "--device", "cpu", "--set", "w_hpf=1"])
    assert result.exit_code == 2, result.output
    assert "wing.ckpt" in result.output and "I2I_WEIGHTS_DIR" in result.output
    assert not out.exists()


def _release(tmp_path, filter_value: torch.Tensor | None = None):
    """A w_hpf=1 *_nets_ema.ckpt as the reference saves it: its generator holds the high-pass filter buffer."""
    torch.manual_seed(0)
    nets = {"generator": Generator(32, 16, 32, dim_in=16, w_hpf=1.0), "mapping_network": MappingNetwork(8, 16, 2, 32),
            "style_encoder": StyleEncoder(32, 16, 2, 32, dim_in=16)}
    state = {k: v.state_dict() for k, v in nets.items()}
    laplacian = torch.tensor([[-1.0, -1, -1], [-1, 8, -1], [-1, -1, -1]])
    state["generator"]["hpf.filter"] = laplacian if filter_value is None else filter_value
    torch.save(state, tmp_path / "100000_nets_ema.ckpt")
    return nets


def test_the_imported_high_pass_release_translates_with_the_fan_masks(tmp_path, wing_dir, monkeypatch):
    from i2i_cli import pretrained
    from i2i_cli.models.networks.fan import FAN

    monkeypatch.setenv("I2I_WEIGHTS_DIR", str(wing_dir))
    nets = _release(tmp_path)
    sets = [*HPF_SETS, "size=32", "style_dim=16", "latent_dim=8", "mapping_dim=32", "max_conv_dim=32", "dim_in=16"]
    run = pretrained.import_file(tmp_path / "100000_nets_ema.ckpt", "starganv2", tmp_path / "run", sets,
                                 ["female", "male"])
    method = load_for_inference(run).method
    fan = FAN(16)
    fan.load_pretrained_state_dict(torch.load(wing_dir / "wing.ckpt", weights_only=True))
    x, s = torch.rand(1, 3, 32, 32) * 2 - 1, torch.randn(1, 16)
    expected = nets["generator"].eval()(x, s, fan.face_masks(x))
    assert torch.allclose(method.translate(x, style=s), expected, atol=1e-6)
    # the CLI: latent-guided outputs of the imported run
    src = tmp_path / "src"
    src.mkdir()
    Image.fromarray(np.full((32, 32, 3), 90, np.uint8)).save(src / "face.png")
    result = runner.invoke(app, ["translate", str(src), str(tmp_path / "out"), "--checkpoint", str(run),
                                 "--domain", "male"])
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "out").rglob("*.png"))) == 1
    with pytest.raises(CheckpointError, match="not match"):  # without w_hpf the tree has one block less
        pretrained.import_file(tmp_path / "100000_nets_ema.ckpt", "starganv2", tmp_path / "run2", sets[1:],
                               ["female", "male"])


def test_a_release_with_another_filter_or_without_wing_is_refused(tmp_path, monkeypatch):
    from i2i_cli import pretrained
    from i2i_cli.errors import WeightsError

    _release(tmp_path, filter_value=torch.ones(3, 3))
    sets = [*HPF_SETS, "size=32", "style_dim=16", "latent_dim=8", "mapping_dim=32", "max_conv_dim=32", "dim_in=16"]
    with pytest.raises(WeightsError, match="wing.ckpt"):  # offline and no wing.ckpt: refused before converting
        pretrained.import_file(tmp_path / "100000_nets_ema.ckpt", "starganv2", tmp_path / "run", sets, ["f", "m"])
    assert not (tmp_path / "run").exists()
    stand_in_wing(tmp_path / "wing.ckpt")
    monkeypatch.setenv("I2I_WEIGHTS_DIR", str(tmp_path))
    with pytest.raises(CheckpointError, match="hpf.filter"):
        pretrained.import_file(tmp_path / "100000_nets_ema.ckpt", "starganv2", tmp_path / "run", sets, ["f", "m"])


@pytest.mark.slow  # exporting the FAN with the generator takes minutes on a CPU
def test_the_masked_generator_exports_to_onnx_with_the_fan_inside(tmp_path, wing_dir, monkeypatch):
    from i2i_cli import pretrained
    from i2i_cli.export import export_onnx

    monkeypatch.setenv("I2I_WEIGHTS_DIR", str(wing_dir))
    _release(tmp_path)
    sets = [*HPF_SETS, "size=32", "style_dim=16", "latent_dim=8", "mapping_dim=32", "max_conv_dim=32", "dim_in=16"]
    run = pretrained.import_file(tmp_path / "100000_nets_ema.ckpt", "starganv2", tmp_path / "run", sets,
                                 ["female", "male"])
    result = export_onnx(run, tmp_path / "g.onnx")
    assert max(result.max_diff.values()) <= result.tolerance
    assert any("generator" in k for k in result.max_diff)
