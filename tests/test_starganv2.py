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
from models.base import Progress
from models.methods.starganv2 import StarGANv2, StarGANv2Config
from models.networks.stargan_v2 import Discriminator, Generator, MappingNetwork, StyleEncoder
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
    assert method.data_spec().layout == "domains" and method.data_spec().random_resized_crop == 0.5


def test_high_pass_skips_change_the_output_only_when_masks_are_given():
    torch.manual_seed(0)
    method = _tiny_method(size=64, w_hpf=1.0).eval()
    assert method.size_multiple == 2 ** 3  # log2(64) - 4 + 1 down-sampling blocks
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    style = method.style_from_latent(torch.randn(1, method.latent_dim), torch.tensor([1]))
    plain = method.translate(x, style=style)
    masks = (torch.rand(1, 1, 64, 64), torch.rand(1, 1, 64, 64))
    assert (method.translate(x, style=style, masks=masks) - plain).abs().mean() > 1e-4
    with pytest.raises(ValueError, match="w_hpf=0"):
        method.phases(Progress())


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


def test_a_high_pass_release_imports_strictly(tmp_path):
    """The CelebA-HQ release (w_hpf 1) has one more down/up pair and no filter key: it loads with --set w_hpf=1."""
    from i2i_cli import pretrained

    torch.manual_seed(0)
    nets = {"generator": Generator(32, 16, 32, dim_in=16, w_hpf=1.0), "mapping_network": MappingNetwork(8, 16, 2, 32),
            "style_encoder": StyleEncoder(32, 16, 2, 32, dim_in=16)}
    torch.save({k: v.state_dict() for k, v in nets.items()}, tmp_path / "100000_nets_ema.ckpt")
    sets = ["w_hpf=1", "size=32", "style_dim=16", "latent_dim=8", "mapping_dim=32", "max_conv_dim=32", "dim_in=16"]
    run = pretrained.import_file(tmp_path / "100000_nets_ema.ckpt", "starganv2", tmp_path / "run", sets,
                                 ["female", "male"])
    method = load_for_inference(run).method
    x, s = torch.rand(1, 3, 32, 32), torch.randn(1, 16)
    assert torch.equal(method.translate(x, style=s), nets["generator"].eval()(x, s))
    with pytest.raises(CheckpointError, match="not match"):  # without w_hpf the tree has one block less
        pretrained.import_file(tmp_path / "100000_nets_ema.ckpt", "starganv2", tmp_path / "run2", sets[1:],
                               ["female", "male"])
