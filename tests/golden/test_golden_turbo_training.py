"""One training iteration of i2i's pix2pix_turbo and cyclegan_turbo against the official img2img-turbo loop
(tests/golden/turbo_training_*.pt, recorded by record_turbo_training.py; format: turbo_training_format.md).

i2i's method runs through the real trainer's iteration (phases, gradient accumulation across phases, clipping,
foreach AdamW over the official parameter lists with their duplicates) in float64 on the fixture's tiny
networks, with the official random draws fed back (posterior noise, DiffAugment); the DDPM step's 1e-10 noise
is left out (i2i's one-step scheduler, see test_golden_turbo_generator.py). Compared: every loss, the gradients
each optimizer step took (after clipping), each step's update, and the discriminators' spectral-norm state.
CycleGAN-Turbo is checked at PR #62's fix (the default) and before it (`d_keeps_g_gradients`)."""

from __future__ import annotations

import types
from typing import Any

import pytest
import torch

pytest.importorskip("diffusers")
pytest.importorskip("peft")

from i2i_cli.engine.device import resolve_precision  # noqa: E402
from i2i_cli.engine.trainer import Trainer, _optimizer  # noqa: E402
from i2i_cli.models.base import Progress  # noqa: E402
from i2i_cli.models.methods import one_step  # noqa: E402
from tests.golden.golden_fixtures import assert_float64_close, float64, load_fixture  # noqa: E402
from tests.golden.record_turbo_training import seeded_clip_state, seeded_vgg16_features  # noqa: E402
from tests.golden.test_turbo_training_fixture import unpack  # noqa: E402

DIFFAUG = ("brightness", "saturation", "contrast", "translation_x", "translation_y", "cutout_x", "cutout_y")
# the official discriminator forwards, in call order -> (i2i discriminator, tag)
P2P_DISC = {"net_disc(for_G) #1": ("D", "G"), "net_disc(for_real=True) #1": ("D", "real"),
            "net_disc(for_real=False) #1": ("D", "fake")}
CYC_DISC = {"net_disc_a(for_G) #1": ("D_A", "G_A"), "net_disc_b(for_G) #1": ("D_B", "G_B"),
            "net_disc_a(for_real=False) #1": ("D_A", "fake_A"), "net_disc_b(for_real=False) #1": ("D_B", "fake_B"),
            "net_disc_a(for_real=True) #1": ("D_A", "real_A"), "net_disc_b(for_real=True) #1": ("D_B", "real_B")}
P2P_POSTERIOR = ["posterior/rec", "posterior/gan"]
CYC_POSTERIOR = ["posterior/cycle_a2b", "posterior/cycle_rec_a", "posterior/cycle_b2a", "posterior/cycle_rec_b",
                 "posterior/gan_b2a", "posterior/gan_a2b", "posterior/idt_a2b", "posterior/idt_b2a"]


def _tiny_losses(monkeypatch: pytest.MonkeyPatch, fixture: dict) -> dict[str, torch.Tensor]:
    """Make the methods build the fixture's tiny CLIP (loss and backbone) and heads; the seeded CLIP weights."""
    from i2i_cli.models.losses.clip_similarity import ClipSimilarityLoss
    from i2i_cli.models.networks.clip import ClipConfig
    from i2i_cli.models.networks.vision_aided import ClipVisionBackbone, VisionAidedDiscriminator

    clip = fixture["clip"]
    state = seeded_clip_state(clip["keys"], clip["shapes"], clip["seed"])
    tiny = dict(clip["config"])
    config = ClipConfig(**tiny, vision_heads=tiny["vision_width"] // 64)  # openai/CLIP's heads for the ViT
    channels = fixture["config"]["disc_channels"][256]
    monkeypatch.setattr(one_step, "_clip_loss", lambda: ClipSimilarityLoss(config))
    monkeypatch.setattr(one_step, "_clip_backbone", lambda: ClipVisionBackbone(config))
    monkeypatch.setattr(one_step, "_discriminator", lambda loss, backbone, name: VisionAidedDiscriminator(
        loss, backbone=backbone, name=name, channels=channels))
    return state


def _base_model(fixture: dict) -> Any:
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    config = fixture["config"]
    return types.SimpleNamespace(unet=UNet2DConditionModel(**config["unet"]), vae=AutoencoderKL(**config["vae"]),
                                 text_encoder=CLIPTextModel(CLIPTextConfig(**config["text"])), tokenizer=None,
                                 scheduler_config=dict(config["scheduler"]))


def _load_fixed_networks(method: Any, fixture: dict, clip_state: dict[str, torch.Tensor]) -> None:
    vgg = {f"features.{k}": v for k, v in seeded_vgg16_features(fixture["lpips"]["vgg_seed"]).items()}
    method.lpips.load_pretrained_state_dict(vgg)
    heads = {k: v for k, v in fixture["lpips"]["state"].items() if k.startswith("lin")}
    method.lpips.model.load_state_dict({**method.lpips.model.state_dict(), **heads})
    method.vagan_backbone.load_pretrained_state_dict(clip_state)
    if method.clip is not None:
        method.clip.load_pretrained_state_dict(clip_state)
    initial = fixture["initial"]
    for name, official in (("D", "net_disc"), ("D_A", "net_disc_a"), ("D_B", "net_disc_b")):
        if official in initial:
            state = {k.split(".", 1)[1]: v for k, v in unpack(initial[official]).items()}
            getattr(method, name).heads.load_state_dict(state, strict=True)


def _draws(fixture: dict, posterior: list[str], discs: dict[str, tuple[str, str]]) -> dict[str, torch.Tensor]:
    draws = [d for d in fixture["draws"] if d["kind"] == "vae_posterior"]
    assert len(draws) == len(posterior)
    out = {name: d["value"] for name, d in zip(posterior, draws)}
    for forward, (name, tag) in discs.items():
        values = [d["value"] for d in fixture["draws"] if d["forward"] == forward]
        assert len(values) == len(DIFFAUG), forward
        out.update({f"{name}.{tag}.{what}": v for what, v in zip(DIFFAUG, values)})
    return out


class _Recorder:
    """What each optimizer step saw: the (clipped) gradients and the update, per parameter object. With
    `official` (per step: {parameter id: the official update}), each step then leaves the official weights, so
    every phase is compared from the official starting point: Adam's first step is ill-conditioned where a
    gradient is near 0 (about lr sign(g) there), and a round-off difference there would reach the next phases."""

    def __init__(self, optimizers: dict[str, torch.optim.Optimizer],
                 official: list[dict[int, torch.Tensor]] | None = None) -> None:
        self.steps: list[tuple[str, dict[int, torch.Tensor], dict[int, torch.Tensor]]] = []
        self.official = official or []
        for name, opt in optimizers.items():
            opt.register_step_pre_hook(lambda o, a, k, name=name: self._before(name, o))
            opt.register_step_post_hook(lambda o, a, k: self._after(o))

    def _before(self, name: str, opt: torch.optim.Optimizer) -> None:
        params = [p for g in opt.param_groups for p in g["params"]]
        grads = {id(p): p.grad.detach().clone() for p in params if p.grad is not None}
        self.steps.append((name, grads, {id(p): p.detach().clone() for p in params}))

    @torch.no_grad()
    def _after(self, opt: torch.optim.Optimizer) -> None:
        index, before = len(self.steps) - 1, self.steps[-1][2]
        official = self.official[index] if index < len(self.official) else {}
        for p in dict.fromkeys(p for g in opt.param_groups for p in g["params"]):  # once per listed-twice tensor
            start = before[id(p)]
            before[id(p)] = p.detach() - start
            if id(p) in official:
                p.copy_(start + official[id(p)].to(p.dtype))


def _run_iteration(method: Any, batch: dict[str, Any], draws: dict[str, torch.Tensor],
                   official: list[dict[int, torch.Tensor]] | None = None) -> tuple[dict, _Recorder]:
    trainer = Trainer.__new__(Trainer)
    trainer.options = types.SimpleNamespace(nan_policy="raise")
    trainer.skipped_steps = 0
    specs = method.optimizers()
    trainer._clip_norms = {s.name: s.max_grad_norm for s in specs}
    optimizers = {s.name: _optimizer(s, torch.device("cpu")) for s in specs}
    recorder = _Recorder(optimizers, official)
    world = types.SimpleNamespace(size=1, rank=0)
    original = method.phases

    terms: dict[str, torch.Tensor] = {}  # the loss terms in float64 (the trainer logs them as float32)

    def phases_with_draws(progress: Progress) -> list:  # the trainer's cache starts empty: seed it with the draws
        result = original(progress)
        for phase in result:
            compute = phase.compute
            phase.compute = lambda b, cache, compute=compute: _kept(compute(b, _seeded(cache, draws)), terms)
        return result

    method.phases = phases_with_draws
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    precision = resolve_precision("fp32", torch.device("cpu"))
    logged = trainer._iteration(method, batch, Progress(0, 1), optimizers, scaler, precision, world, 0)
    assert logged is not None and set(logged) == set(terms)
    return terms, recorder


def _kept(computed: dict[str, torch.Tensor], terms: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    terms.update({k: v.detach() for k, v in computed.items()})
    return computed


def _seeded(cache: dict[str, Any], draws: dict[str, torch.Tensor]) -> dict[str, Any]:
    cache.setdefault("draws", dict(draws))
    return cache

def _parameters(method: Any, cyclegan: bool) -> dict[str, torch.nn.Parameter]:
    """The fixture's parameter names -> i2i's parameter objects."""
    networks = ({"unet": method.unet, "vae_a2b": method.vae_a2b, "vae_b2a": method.vae_b2a,
                 "net_disc_a.decoder.0": method.D_A.heads, "net_disc_b.decoder.0": method.D_B.heads} if cyclegan else
                {"unet": method.G.unet, "vae": method.G.vae, "net_disc.decoder.0": method.D.heads})
    return {f"{prefix}.{name}": p for prefix, net in networks.items() for name, p in net.named_parameters()}


def _build(name: str, fixture: dict, monkeypatch: pytest.MonkeyPatch, **options: Any) -> tuple[Any, dict]:
    from i2i_cli.models import registry

    args = fixture["args"]
    clip_state = _tiny_losses(monkeypatch, fixture)
    cls = registry.method_class(name)
    common = dict(lr=args["learning_rate"], beta1=args["adam_beta1"], beta2=args["adam_beta2"],
                  weight_decay=args["adam_weight_decay"], adam_eps=args["adam_epsilon"],
                  max_grad_norm=args["max_grad_norm"], gan_loss=args["gan_loss_type"], lambda_gan=args["lambda_gan"],
                  lora_rank_unet=args["lora_rank_unet"], lora_rank_vae=args["lora_rank_vae"], batch_size=2)
    if name == "pix2pix_turbo":
        extra = dict(lambda_l2=args["lambda_l2"], lambda_lpips=args["lambda_lpips"],
                     lambda_clipsim=args["lambda_clipsim"])
    else:
        extra = dict(lambda_cycle=args["lambda_cycle"], lambda_cycle_lpips=args["lambda_cycle_lpips"],
                     lambda_idt=args["lambda_idt"], lambda_idt_lpips=args["lambda_idt_lpips"], caption_A="a",
                     caption_B="b")
    torch.manual_seed(0)
    method = cls(cls.config_class(**common, **extra, **options))
    method.attach_base_model(_base_model(fixture))
    initial = fixture["initial"]
    if name == "pix2pix_turbo":
        method.G.unet.load_state_dict(unpack(initial["unet"]), strict=True)
        method.G.vae.load_state_dict(unpack(initial["vae"]), strict=True)
        method.text_encoder.load_state_dict(unpack(initial["text_encoder"]), strict=True)
    else:
        method.unet.load_state_dict(unpack(initial["unet"]), strict=True)
        method.vae_a2b.load_state_dict(unpack(initial["vae_a2b"]), strict=True)
        b2a = {**unpack(initial["vae_a2b"]), **unpack(initial["vae_b2a_differs"])}
        method.vae_b2a.load_state_dict(b2a, strict=True)
    _load_fixed_networks(method, fixture, clip_state)
    method.double().train()
    return method, _batch(name, method, fixture)


def _batch(name: str, method: Any, fixture: dict) -> dict[str, Any]:
    """The official batch in i2i's form; the captions' text-encoder states (and CLIP tokens) as the official
    computed them from its token ids (the tiny text encoder has no tokenizer)."""
    batch = fixture["batch"]
    if name == "pix2pix_turbo":
        with torch.no_grad():
            states = method.text_encoder(batch["input_ids"])[0]
        method._captions = {c: states[i:i + 1] for i, c in enumerate(batch["caption"])}
        tokens = batch["clip_tokens"]
        method.caption_tokens = lambda captions: tokens
        return {"A": batch["conditioning_pixel_values"].double() * 2 - 1, "B": batch["output_pixel_values"].double(),
                "caption": list(batch["caption"])}
    initial = fixture["initial"]
    method._captions = {"b": initial["fixed_a2b_emb_base"].double(), "a": initial["fixed_b2a_emb_base"].double()}
    return {"A": batch["pixel_values_src"].double(), "B": batch["pixel_values_tgt"].double()}


def _compare_steps(fixture: dict, recorder: _Recorder, params: dict[str, torch.nn.Parameter], steps: list[dict],
                   offset: int = 0) -> None:
    for index, expected in enumerate(steps):
        _, grads, updates = recorder.steps[offset + index]
        optimizer = fixture["optimizers"][expected["optimizer"]]
        want_grads = split(expected["grads"], optimizer)
        want_steps = split(expected["step"], optimizer)
        scale = max(float(g.abs().max()) for g in want_grads.values())
        step_scale = max(float(s.abs().max()) for s in want_steps.values())
        for name, grad in want_grads.items():
            param = params[name]
            what = f"{expected['phase']}: {name}"
            assert_float64_close(grads[id(param)], grad, what=f"{what} gradient", scale=scale)
            keep = grad.abs() > 1e-9 * scale  # where the gradient is ~0, the step is the sign of round-off
            step = want_steps[name].double()
            # Adam's first step is about -lr g / (|g| + eps): a gradient within 1e-9 of the scale moves it by up
            # to lr eps 1e-9 scale / (|g| + eps)^2 (twice for a parameter listed twice); plus float32 storage
            hyper = optimizer["hyper"]
            conditioning = 2 * hyper["lr"] * hyper["eps"] * 1e-9 * scale / (grad.abs() + hyper["eps"]) ** 2
            assert_float64_close(updates[id(param)][keep], step[keep], what=f"{what} step", scale=step_scale,
                                 slack=2.0**-24 * step[keep].abs() + conditioning[keep])


def _official_updates(fixture: dict, steps: list[dict], params: dict[str, torch.nn.Parameter]
                      ) -> list[dict[int, torch.Tensor]]:
    return [{id(params[n]): v for n, v in split(s["step"], fixture["optimizers"][s["optimizer"]]).items()}
            for s in steps]


def split(flat: torch.Tensor, optimizer: dict) -> dict[str, torch.Tensor]:
    sizes = [int(torch.tensor(shape).prod()) for shape in optimizer["trained_shapes"]]
    parts = torch.split(flat.double(), sizes)
    return {n: p.reshape(s) for n, p, s in zip(optimizer["trained"], parts, optimizer["trained_shapes"])}


def _spectral_state(method: Any, names: dict[str, str]) -> dict[str, torch.Tensor]:
    out = {}
    for official, name in names.items():
        for key, value in getattr(method, name).heads.state_dict().items():
            if key.endswith(("weight_u", "weight_v")):
                out[f"{official}.{key}"] = value
    return out


def test_pix2pix_turbo_iteration_equals_the_official(monkeypatch: pytest.MonkeyPatch) -> None:
    fixture = load_fixture("turbo_training_pix2pix")
    with float64():
        method, batch = _build("pix2pix_turbo", fixture, monkeypatch)
        draws = _draws(fixture, P2P_POSTERIOR, P2P_DISC)
        official = _official_updates(fixture, fixture["steps"], _parameters(method, False))
        logged, recorder = _run_iteration(method, batch, draws, official)
    losses, args = fixture["losses"], fixture["args"]
    expected = {"G_L2": losses["loss_l2"], "G_LPIPS": losses["loss_lpips"],
                "G_CLIPSIM": losses["loss_clipsim"] * args["lambda_clipsim"], "G_GAN": losses["lossG"],
                "D_real": losses["lossD_real"], "D_fake": losses["lossD_fake"]}
    for key, value in expected.items():
        assert_float64_close(logged[key], value, what=key)
    assert [s["phase"] for s in fixture["steps"]] == ["reconstruction", "generator_gan", "disc_real", "disc_fake"]
    assert [s[0] for s in recorder.steps] == ["G", "G", "D", "D"]
    _compare_steps(fixture, recorder, _parameters(method, False), fixture["steps"])
    _compare_buffers(fixture, method, {"net_disc": "D"})


def _compare_buffers(fixture: dict, method: Any, names: dict[str, str]) -> None:
    got = _spectral_state(method, names)
    for official, buffers in fixture["disc_buffers_final"].items():
        for key, value in buffers.items():
            name = f"{official}.{key.split('.', 1)[1] if key.startswith('0.') else key}"
            assert_float64_close(got[name], value, what=f"{name} after the iteration")


@pytest.mark.parametrize("pre62", [False, True], ids=["after_pr62", "before_pr62"])
def test_cyclegan_turbo_iteration_equals_the_official(pre62: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    fixture = load_fixture("turbo_training_cyclegan")
    with float64():
        method, batch = _build("cyclegan_turbo", fixture, monkeypatch, d_keeps_g_gradients=pre62)
        draws = _draws(fixture, CYC_POSTERIOR, CYC_DISC)
        losses, steps = fixture["losses"], fixture["steps"]
        if pre62:
            before = load_fixture("turbo_training_cyclegan_pre62")
            losses = before["losses"]
            steps = [s for s in steps if not s["phase"].startswith("disc")] + list(before["steps"])
        official = _official_updates(fixture, steps, _parameters(method, True))
        logged, recorder = _run_iteration(method, batch, draws, official)
    expected = {"cycle_A": losses["loss_cycle_a"], "cycle_B": losses["loss_cycle_b"],
                "G_GAN_A": losses["loss_gan_a"], "G_GAN_B": losses["loss_gan_b"], "idt_A": losses["loss_idt_a"],
                "idt_B": losses["loss_idt_b"], "D_A_fake": losses["loss_D_A_fake"] * 0.5,
                "D_B_fake": losses["loss_D_B_fake"] * 0.5, "D_A_real": losses["loss_D_A_real"] * 0.5,
                "D_B_real": losses["loss_D_B_real"] * 0.5}
    assert [s[0] for s in recorder.steps] == ["G", "G", "G", "D", "D"]
    _compare_steps(fixture, recorder, _parameters(method, True), steps)
    for key, value in expected.items():
        assert_float64_close(logged[key], value, what=key)
