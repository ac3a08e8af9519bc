"""bf16 against fp32 on the golden fixtures: each method's translation from the OFFICIAL weights and inputs that
its golden test replays, run in float32 and under `torch.autocast("cpu", dtype=torch.bfloat16)` (what
`--precision bf16` does: i2i_cli/engine/device.Precision.autocast), must stay within a stated bound of float32.

The networks are built as each method's golden test builds them (its helpers), outside golden_fixtures.float64(),
so in float32 (autocast leaves float64 alone), in eval mode as inference runs them. What the fixtures hold: the
weights the golden tests load (the official code's initial weights, or the recorders' seeded redraws of them, at
tiny widths: ngf 1..4, not trained weights) and synthetic inputs (uniform 8-bit noise; smooth bicubic blobs for
FSeSim / LSeSim; uniform noise for StarGAN v2 and img2img-turbo), 16..64 px. docs/benchmarks.md has the measured
table; `python -m pytest tests/golden/test_golden_bf16.py -q -s` prints it.

Bounds: PSNR >= 40 dB on the [-1, 1] range (tests/test_methods.py's formula) of the clamped images, unless
BF16_PSNR states another with its measured reason; the rms difference within REL_RMS of fp32's own rms; the
segmenter (DRN-D-22, a label map) >= 98% of pixels in the same argmax class.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext

import pytest
import torch

from tests.test_methods import _psnr

Forward = Callable[[], torch.Tensor]  # one translation of the fixture's inputs, in the ambient precision

DEFAULT_PSNR = 40.0
# Where a method measured within 2 dB of 40: its bound, with the measured reason (docs/benchmarks.md). StarGAN v2's
# AFHQ setting (no high-pass skips) measured 41.2 / 41.5 dB (reference / latent style; 38.1 / 38.3 before the
# clamp): its outputs reach |7| at these tiny widths, the AdaIN scales and the style code are computed in bf16.
# The same figure as tests/test_methods.py's BF16_PSNR for its tiny trained run.
BF16_PSNR = {"starganv2/afhq/reference": 38.0, "starganv2/afhq/latent": 38.0}
# PSNR on [-1, 1] grows as an output shrinks: these initial weights give some methods outputs of rms 0.01 (CUT's,
# the SeSims'), where 75 dB says little. The scale-free check: the rms of bf16 - fp32 relative to fp32's own rms,
# measured 0.5% .. 3.6% (CycleGAN-Turbo the largest) with torch's native and emulated bf16 kernels.
REL_RMS = 0.06
SAME_CLASS = 0.98  # segmenter: share of pixels whose argmax class bf16 keeps (near-tied logits may flip)


def _replay_cut_family(name: str) -> tuple[Forward, tuple[int, ...]]:
    """pix2pix / CycleGAN / CUT / FastCUT: replay_cut_cyclegan_pix2pix.build from the fixture's official weights,
    then translate A as inference does (eval mode; pix2pix's per-image batch norm, no dropout)."""
    from tests.golden.replay_cut_cyclegan_pix2pix import build, load, to_float

    fixture = load(name)
    method = build(name, fixture).eval()
    x = to_float(fixture["inputs"]["A_u8"])
    return lambda: method.translate(x), tuple(x.shape)


def _sesim(name: str) -> tuple[Forward, tuple[int, ...]]:
    from i2i_cli.models.losses.spatial_correlative import from_8bit
    from i2i_cli.models.methods.sesim import FSeSim, LSeSim
    from tests.golden.golden_fixtures import load_fixture
    from tests.golden.sesim_replay import build

    fixture = load_fixture(name)
    method = build(fixture, {"fsesim": FSeSim, "lsesim": LSeSim}[name]).float().eval()
    x = from_8bit(fixture["images"]["A"], torch.float32)
    return lambda: method.translate(x), tuple(x.shape)


def _single_image(name: str) -> tuple[Forward, tuple[int, ...]]:
    """SinCUT / SinSeSim: translate draws G's noise maps from torch's generator; the caller seeds it alike."""
    from tests.golden.golden_fixtures import load_fixture
    from tests.golden.test_golden_sincut import build as build_sincut
    from tests.golden.test_golden_sinsesim import build as build_sinsesim

    fixture = load_fixture(name)
    method = {"sincut": build_sincut, "sinsesim": build_sinsesim}[name](fixture).float().eval()
    x = fixture["images"]["A"].float() / 127.5 - 1
    return lambda: method.translate(x), tuple(x.shape)


def _agcyclegan(name: str) -> tuple[Forward, tuple[int, ...]]:
    from i2i_cli.models.methods.agcyclegan import AGCycleGAN, AGCycleGANConfig
    from tests.golden.golden_fixtures import load_fixture
    from tests.golden.test_golden_agcyclegan import _load_official

    official = load_fixture("agcyclegan")
    method = AGCycleGAN(AGCycleGANConfig(ngf=official["ngf"], attention_ngf=official["ngf"], ndf=official["ndf"]))
    _load_official(method, official["variables"])
    method.eval()
    x = official["inputs"]["images_a"]
    return lambda: method.translate(x), tuple(x.shape)


def _starganv2(case: str) -> tuple[Forward, tuple[int, ...]]:
    """StarGAN v2 as translate uses it: the style from a reference (style encoder) or from a latent code
    (mapping network), then the generator; CelebA-HQ's setting (w_hpf 1) with the golden test's stand-in
    masks, computed inside the precision context as the FAN's would be."""
    from tests.golden.golden_fixtures import float64
    from tests.golden.record_starganv2 import inputs
    from tests.golden.test_golden_starganv2 import FIXTURE, _method

    _, setting_name, style_from = case.split("/")
    setting = FIXTURE[setting_name]
    with float64():  # the seeded mapping network is drawn in float64, as the golden test draws it
        method = _method(setting)
    method = method.float().eval()
    x_real, x_ref, _, z, _ = (t.float() for t in inputs(setting["inputs_seed"]))
    y_trg = setting["y_trg"]

    def forward() -> torch.Tensor:
        if style_from == "reference":
            style = method.style_from_reference(x_ref, y_trg)
        else:
            style = method.style_from_latent(z, y_trg)
        masks = method.face_masks(x_real) if setting["w_hpf"] > 0 else None
        return method.translate(x_real, style=style, masks=masks)

    return forward, tuple(x_real.shape)


def _segmenter_classes(name: str) -> tuple[Forward, tuple[int, ...]]:
    """DRN-D-22: the argmax class per pixel (translate colours it; the colours are a lookup of the class)."""
    from tests.golden.replay_cut_cyclegan_pix2pix import build, load, to_float

    fixture = load("segmenter")
    method = build("segmenter", fixture).eval()
    x = to_float(fixture["inputs"]["photo_u8"])
    return lambda: method.logits(x).argmax(1), tuple(x.shape)


def _turbo(case: str) -> tuple[Forward, tuple[int, ...]]:
    """img2img-turbo's one-step generator from the fixture's official weights (test_golden_turbo_generator's
    builders), the latent at the posterior mean as translate takes it; pix2pix-Turbo's caption through the text
    encoder inside the precision context (translate encodes it there), CycleGAN-Turbo's recorded embedding."""
    pytest.importorskip("diffusers")
    pytest.importorskip("peft")
    from transformers import CLIPTextConfig, CLIPTextModel

    from i2i_cli.models.networks import turbo
    from tests.golden.golden_fixtures import load_fixture
    from tests.golden.record_turbo_generator import SCHEDULER, TINY_TEXT, TINY_UNET, UNPAIRED_RANK
    from tests.golden.test_golden_turbo_generator import _translator, _vae, unpack

    fixture = load_fixture("turbo_generator")
    if case == "pix2pix_turbo":
        translator = _translator().eval()
        text = CLIPTextModel(CLIPTextConfig(**TINY_TEXT)).eval()
        translator.unet.load_state_dict(unpack(fixture["unet"]), strict=True)
        translator.vae.load_state_dict(unpack(fixture["vae"]), strict=True)
        text.load_state_dict(unpack(fixture["text_encoder"]), strict=True)
        x, tokens = fixture["input"].float(), fixture["tokens"]
        return lambda: translator(x, text(tokens)[0].float()), tuple(x.shape)
    from diffusers import UNet2DConditionModel

    unpaired = fixture["unpaired"]
    unet = UNet2DConditionModel(**TINY_UNET)
    turbo.add_unet_lora_unpaired(unet, rank=UNPAIRED_RANK)
    unet.load_state_dict(unpack(unpaired["unet"]), strict=True)
    vae = _vae()
    vae.load_state_dict(unpack(unpaired["vae_a2b"]), strict=True)
    translator = turbo.OneStepTranslator(unet, vae, turbo.OneStepScheduler.from_config(SCHEDULER)).float().eval()
    x, caption = unpaired["input"].float(), unpaired["caption"].float()
    return lambda: translator(x, caption), tuple(x.shape)


CASES: dict[str, Callable[[str], tuple[Forward, tuple[int, ...]]]] = {
    "pix2pix": _replay_cut_family,
    "cyclegan": _replay_cut_family,
    "cut": _replay_cut_family,
    "fastcut": _replay_cut_family,
    "fsesim": _sesim,
    "lsesim": _sesim,
    "sincut": _single_image,
    "sinsesim": _single_image,
    "agcyclegan": _agcyclegan,
    "starganv2/afhq/reference": _starganv2,
    "starganv2/afhq/latent": _starganv2,
    "starganv2/celeba_hq/reference": _starganv2,
    "starganv2/celeba_hq/latent": _starganv2,
    "segmenter": _segmenter_classes,
    "pix2pix_turbo": _turbo,
    "cyclegan_turbo": _turbo,
}


def _run(forward: Forward, precision: AbstractContextManager) -> torch.Tensor:
    with torch.no_grad(), precision:
        torch.manual_seed(0)  # the same draws (SinCUT's noise maps) in both precisions
        return forward().float()


@pytest.mark.parametrize("case", list(CASES))
def test_bf16_stays_within_its_bound_of_fp32_on_the_golden_inputs(case: str) -> None:
    forward, shape = CASES[case](case)
    fp32 = _run(forward, nullcontext())
    bf16 = _run(forward, torch.autocast("cpu", dtype=torch.bfloat16))
    assert bf16.shape == fp32.shape and torch.isfinite(bf16).all()
    size = "x".join(map(str, shape))
    if case == "segmenter":
        same = float((bf16 == fp32).float().mean())
        print(f"\nbf16 vs fp32 {case} {size}: {same:.2%} of pixels in the same class")
        assert same >= SAME_CLASS, f"bf16 vs fp32: {same:.1%} of pixels in the same class"
        return
    # the images a user gets are clamped to [-1, 1] (i2i_cli/data/images.py): SinCUT's and StarGAN v2's raw
    # outputs reach 11 and 8 here, and their bf16 error out there never reaches a pixel
    psnr = _psnr(bf16.clamp(-1, 1), fp32.clamp(-1, 1))
    relative = float((bf16 - fp32).pow(2).mean().sqrt() / fp32.pow(2).mean().sqrt())
    print(f"\nbf16 vs fp32 {case} {size}: {psnr:.1f} dB ({_psnr(bf16, fp32):.1f} before the clamp), "
          f"relative rms {relative:.2%} (fp32 rms {float(fp32.pow(2).mean().sqrt()):.3f}, "
          f"range {float(fp32.min()):.2f}..{float(fp32.max()):.2f})")
    bound = BF16_PSNR.get(case, DEFAULT_PSNR)
    assert psnr >= bound, f"bf16 vs fp32: {psnr:.1f} dB < {bound} dB"
    assert relative <= REL_RMS, f"bf16 vs fp32: rms difference {relative:.1%} of fp32's rms > {REL_RMS:.0%}"
