"""Record tests/golden/clip.pt and tests/golden/vision_aided.pt: OpenAI's CLIP and img2img-turbo's two uses of it
(the CLIP-similarity loss of train_pix2pix_turbo.py, and vision_aided_loss's CLIP discriminator), float64.

Runs outside CI against two checkouts named by environment variables (only numbers are saved):

- I2I_OFFICIAL_CLIP: openai/CLIP (clip/model.py: `CLIP`, imported by path; it needs only torch and numpy);
- I2I_OFFICIAL_VISION_AIDED: nupurkmr9/vision-aided-gan (the package vision_aided_loss: `Discriminator`).

The commit of each checkout comes from `git rev-parse HEAD` in it, or I2I_OFFICIAL_<NAME>_COMMIT. For example:

    I2I_OFFICIAL_CLIP=/tmp/official/clip I2I_OFFICIAL_VISION_AIDED=/tmp/official/vision-aided-gan \\
    PYTHONPATH=$PWD python tests/golden/record_clip.py

What is patched, and why (each is a no-op in the official float32 training run):
- clip/model.py's `LayerNorm` (an nn.LayerNorm that computes in float32 for float16 weights) runs as
  nn.LayerNorm: its `x.type(torch.float32)` would turn the float64 run into a float32 one (and fail on float64
  weights);
- `torch.Tensor.float` leaves float64 tensors as they are while recording: vision_aided_loss calls `.float()` on
  the CLIP features and before its last head (no-ops on the float32 features of training);
- `clip.load` (what vision_aided_loss's CVBackbone calls for ViT-B/32) answers with a CLIP built by the official
  `CLIP` class from seeded weights (`seeded_state`; the tests rebuild them). Its image tower has ViT-B/32's
  widths, which vision_aided_loss hard-codes (768-wide 7 x 7 maps, 512-d embedding), but 9 blocks instead of 12
  (taps after blocks 4, 8 and the last stay distinct); the text tower is tiny and unused. timm,
  antialiased_cnns and gdown are stubbed: imported by vision_aided_loss's cvmodel, never run for cv_type 'clip';
- DiffAugment's `torch` is wrapped to record each torch.rand / torch.randint result (the draws the test replays).

clip.pt: a tiny CLIP (embed 32, 224 px, patch 32, vision width 128 x 2 blocks, text width 128 x 2 blocks,
context 77, vocabulary 100): image and text features and both logit matrices for 3 images x 3 token rows; the
CLIP-similarity loss lines of train_pix2pix_turbo.py on 2 images of 24 x 20 (and its gradient to the images).
vision_aided.pt: Discriminator(cv_type='clip', loss_type='multilevel_sigmoid_s') in train mode (as the training
scripts leave it) called as pix2pix-turbo's step calls it: for_G=True on fake images (gradient to them), then
for_real=True on real images, then for_real=False on the fakes (heads' gradients of each, zeroed in between);
per call the draws, the backbone features (samples of the embedding and of the two maps), the heads' logits, the
per-image losses (and 'multilevel_sigmoid''s on the same logits), the spectral-norm buffers after it (weight_u;
weight_v after the last call); the heads' gradients (samples) of the two discriminator calls.
"""

from __future__ import annotations

import importlib.util
import math
import os
import subprocess
import sys
import types
import zlib
from pathlib import Path

import torch

GOLDEN = Path(__file__).resolve().parent
SEED = 31
# clip.pt's CLIP, in the official CLIP(...) argument order
TINY = dict(embed_dim=32, image_resolution=224, vision_layers=2, vision_width=128, vision_patch_size=32,
            context_length=77, vocab_size=100, transformer_width=128, transformer_heads=2, transformer_layers=2)
# vision_aided.pt's CLIP: ViT-B/32's image tower widths with 9 blocks; a tiny unused text tower
VISION = dict(embed_dim=512, image_resolution=224, vision_layers=9, vision_width=768, vision_patch_size=32,
              context_length=4, vocab_size=8, transformer_width=64, transformer_heads=1, transformer_layers=1)
IMAGE_SIZE = (30, 36)  # the discriminator's inputs: neither side divides 224 (area resampling) nor 8 (DiffAugment)
SAMPLES = 256  # elements kept of each large tensor (spread evenly over it)
DRAW_NAMES = ("brightness", "saturation", "contrast", "translation_x", "translation_y", "cutout_x", "cutout_y")
TARGETS = ("G", "real", "fake")  # pix2pix-turbo's order of calls per step


def seeded_tensor(key: str, shape: tuple[int, ...], seed: int = SEED) -> torch.Tensor:
    """Float64 values for one state-dict entry, from a generator seeded by the seed and the key's name (so any
    subset of keys, e.g. only `visual.*`, gets the same values): norms near 1, biases and embeddings small,
    matrices N(0, 1 / fan_in), spectral-norm vectors unit, logit_scale ln 100."""
    if key.endswith("logit_scale"):
        return torch.tensor(math.log(100.0), dtype=torch.float64)
    generator = torch.Generator().manual_seed(seed * 1_000_003 + zlib.crc32(key.encode()))
    noise = torch.randn(shape, generator=generator, dtype=torch.float64)
    name = key.rsplit(".", 1)[-1]
    if name in ("weight_u", "weight_v"):
        return noise / noise.norm()
    if ("ln_" in key or key.startswith("ln")) and name == "weight":
        return 1 + 0.1 * noise
    if name in ("bias", "in_proj_bias") or "embedding" in key and key != "token_embedding.weight":
        return 0.1 * noise
    if key.endswith("proj") or key.endswith("text_projection"):  # used as x @ proj: fan-in is the first dim
        return noise / math.sqrt(shape[0])
    if len(shape) < 2:
        return noise
    return noise / math.sqrt(math.prod(shape[1:]))


def seeded_state(shapes: dict[str, tuple[int, ...]], seed: int = SEED) -> dict[str, torch.Tensor]:
    return {key: seeded_tensor(key, tuple(shape), seed) for key, shape in shapes.items()}


def clip_inputs(seed: int = SEED) -> dict[str, torch.Tensor]:
    """clip.pt's inputs: 3 normalised 224 px images, 3 token rows (start 98, text, end 99, zero padding; the
    last row full, as clip.tokenize(truncate=True) ends a long caption), 2 images in [-1, 1] for the loss."""
    generator = torch.Generator().manual_seed(seed)
    images = torch.randn(3, 3, 224, 224, generator=generator, dtype=torch.float64)
    tokens = torch.zeros(3, 77, dtype=torch.long)
    for row, length in enumerate((5, 12, 75)):
        text = torch.randint(1, 98, (length,), generator=generator)
        tokens[row, : length + 2] = torch.cat([torch.tensor([98]), text, torch.tensor([99])])
    small = torch.rand(2, 3, 24, 20, generator=generator, dtype=torch.float64) * 2 - 1
    return {"images": images, "tokens": tokens, "loss_images": small}


def discriminator_inputs(seed: int = SEED) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed + 1)
    fake = torch.rand(2, 3, *IMAGE_SIZE, generator=generator, dtype=torch.float64) * 2 - 1
    real = torch.rand(2, 3, *IMAGE_SIZE, generator=generator, dtype=torch.float64) * 2 - 1
    return {"fake": fake, "real": real}


def sample_index(numel: int) -> torch.Tensor:
    return torch.linspace(0, numel - 1, min(numel, SAMPLES), dtype=torch.float64).round().long()


def summary(t: torch.Tensor) -> dict[str, torch.Tensor]:
    """A large tensor as its largest magnitude, norm and SAMPLES evenly spread elements (small ones whole)."""
    flat = t.detach().reshape(-1).double()
    return {"absmax": flat.abs().max(), "norm": flat.norm(), "samples": flat[sample_index(flat.numel())].clone()}


def checkout(name: str) -> tuple[Path, str]:
    root = os.environ.get(f"I2I_OFFICIAL_{name}")
    if not root:
        sys.exit(f"set I2I_OFFICIAL_{name} to a checkout of the official repository")
    commit = os.environ.get(f"I2I_OFFICIAL_{name}_COMMIT") or subprocess.run(
        ["git", "-C", root, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    return Path(root), commit


def _import(path: Path, name: str) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def official_clip(model_py: types.ModuleType, dims: dict) -> torch.nn.Module:
    model = model_py.CLIP(**dims)
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    model.load_state_dict(seeded_state(shapes), strict=True)
    return model.double().eval()


def record_clip(model_py: types.ModuleType, commit: str) -> None:
    from torchvision import transforms

    model = official_clip(model_py, TINY).requires_grad_(False)
    inputs = clip_inputs()
    with torch.no_grad():
        logits_per_image, logits_per_text = model(inputs["images"], inputs["tokens"])
        image_features = model.encode_image(inputs["images"])
        text_features = model.encode_text(inputs["tokens"])
    # train_pix2pix_turbo.py's lines, verbatim but for the names
    x_tgt_pred = inputs["loss_images"].clone().requires_grad_(True)
    caption_tokens = inputs["tokens"][:2]
    t_clip_renorm = transforms.Normalize(mean=(0.48145466, 0.4578275, 0.40821073),
                                         std=(0.26862954, 0.26130258, 0.27577711))
    x_tgt_pred_renorm = t_clip_renorm(x_tgt_pred * 0.5 + 0.5)
    x_tgt_pred_renorm = torch.nn.functional.interpolate(x_tgt_pred_renorm, (224, 224), mode="bilinear",
                                                        align_corners=False)
    clipsim, _ = model(x_tgt_pred_renorm, caption_tokens)
    loss_clipsim = (1 - clipsim.mean() / 100)
    loss_clipsim.backward()
    record = {"official_repo": "openai/CLIP", "official_commit": commit, "dtype": "float64", "seed": SEED,
              "tokens": inputs["tokens"], "image_features": image_features, "text_features": text_features,
              "logits_per_image": logits_per_image, "logits_per_text": logits_per_text,
              "clipsim": clipsim.detach(), "loss_clipsim": loss_clipsim.detach(),
              "loss_clipsim_image_grad": x_tgt_pred.grad.clone(),
              "loss_repo": "GaParmar/img2img-turbo (src/train_pix2pix_turbo.py, the lines reproduced above)"}
    torch.save(record, GOLDEN / "clip.pt")
    print(f"wrote clip.pt: loss {float(loss_clipsim.detach()):.6f}, logits {logits_per_image.diagonal().tolist()}")


class _RecordingTorch:
    """torch, except that torch.rand / torch.randint results are appended to `drawn` (DiffAugment's draws)."""

    def __init__(self, drawn: list[torch.Tensor]) -> None:
        self._drawn = drawn

    def __getattr__(self, name: str):
        value = getattr(torch, name)
        if name not in ("rand", "randint"):
            return value

        def recorded(*args, **kwargs):
            result = value(*args, **kwargs)
            self._drawn.append(result.clone())
            return result
        return recorded


def _stub_imports(tiny: torch.nn.Module) -> None:
    for name in ("timm", "antialiased_cnns", "gdown"):
        sys.modules[name] = types.ModuleType(name)
    clip_stub = types.ModuleType("clip")
    clip_stub.load = lambda name, jit=False, device="cpu": (tiny, None)  # noqa: ARG005 - the official call
    sys.modules["clip"] = clip_stub


def _spectral_buffers(heads: torch.nn.Module, with_v: bool) -> dict[str, torch.Tensor]:
    """weight_u whole; with_v: weight_v whole up to 512 elements, else its first 512 (a conv's 6912)."""
    out = {}
    for key, value in heads.state_dict().items():
        if key.endswith("weight_u"):
            out[key] = value.clone()
        elif key.endswith("weight_v") and with_v:
            out[key] = value[:512].clone()
    return out


def _official_discriminator(model_py: types.ModuleType, vision_aided_root: Path, drawn: list[torch.Tensor]):
    _stub_imports(official_clip(model_py, VISION).requires_grad_(False))
    sys.path.insert(0, str(vision_aided_root))
    import vision_aided_loss  # noqa: PLC0415 - the official package, from the checkout
    from vision_aided_loss import DiffAugment_pytorch  # noqa: PLC0415

    DiffAugment_pytorch.torch = _RecordingTorch(drawn)
    net_disc = vision_aided_loss.Discriminator(cv_type="clip", loss_type="multilevel_sigmoid_s", device="cpu")
    heads = net_disc.decoder[0]
    shapes = {k: tuple(v.shape) for k, v in heads.state_dict().items() if not k.endswith("filt")}
    heads.load_state_dict(seeded_state(shapes), strict=False)
    # train_pix2pix_turbo.py's set-up, then its "turn off eff. attn" loop: which modules does it reach?
    net_disc = net_disc.double()
    net_disc.requires_grad_(True)
    net_disc.cv_ensemble.requires_grad_(False)
    net_disc.train()
    attn_names = [name for name, _ in net_disc.named_modules() if "attn" in name]
    for name, module in net_disc.named_modules():
        if "attn" in name:
            module.fused_attn = False
    return net_disc, vision_aided_loss, attn_names


def _one_call(net_disc, target: str, x: torch.Tensor, drawn: list[torch.Tensor], captured: dict) -> dict:
    heads = net_disc.decoder[0]
    drawn.clear()
    torch.manual_seed(100 + TARGETS.index(target))
    flags = {"G": {"for_G": True}, "real": {"for_real": True}, "fake": {"for_real": False}}[target]
    loss = net_disc(x, **flags)
    loss.mean().backward()
    features, predictions = captured["features"], captured["predictions"]
    record = {"draws": dict(zip(DRAW_NAMES, drawn)), "seed": 100 + TARGETS.index(target), "loss": loss.detach(),
              "embedding": summary(features[2]), "map4": summary(features[0]), "map8": summary(features[1]),
              "predictions": [p.detach().clone() for p in predictions],
              "spectral": _spectral_buffers(heads, with_v=target == TARGETS[-1])}
    if target != "G":  # the discriminator's own steps (G's call gives the images' gradient instead)
        record["heads_grad"] = {k: summary(p.grad) for k, p in heads.named_parameters()}
    heads.zero_grad(set_to_none=True)
    return record


def record_vision_aided(model_py: types.ModuleType, root: Path, commit: str, clip_commit: str) -> None:
    drawn: list[torch.Tensor] = []
    net_disc, package, attn_names = _official_discriminator(model_py, root, drawn)
    captured: dict = {}
    net_disc.decoder[0].register_forward_pre_hook(lambda m, args: captured.update(features=args[0]))
    net_disc.loss_type.register_forward_pre_hook(lambda m, args: captured.update(predictions=args[0][0]))
    inputs = discriminator_inputs()
    record = {"official_repo": "nupurkmr9/vision-aided-gan", "official_commit": commit, "clip_commit": clip_commit,
              "dtype": "float64", "seed": SEED, "attn_module_names": attn_names}
    plain = package.cv_losses.losses_list("multilevel_sigmoid")
    for target in TARGETS:
        x = inputs["real"] if target == "real" else inputs["fake"]
        x = x.clone().requires_grad_(target == "G")
        call = _one_call(net_disc, target, x, drawn, captured)
        flags = {"G": {"for_G": True}, "real": {"for_real": True}, "fake": {"for_real": False}}[target]
        call["loss_multilevel_sigmoid"] = plain([call["predictions"]], **flags).detach()
        if target == "G":
            call["image_grad"] = x.grad.clone()
        record[target] = call
        print(f"{target}: loss {call['loss'].flatten().tolist()}")
    torch.save(record, GOLDEN / "vision_aided.pt")
    print(f"wrote vision_aided.pt; modules named *attn*: {attn_names}")


def main() -> None:
    clip_root, clip_commit = checkout("CLIP")
    va_root, va_commit = checkout("VISION_AIDED")
    torch.set_default_dtype(torch.float64)
    model_py = _import(clip_root / "clip" / "model.py", "official_clip_model")
    model_py.LayerNorm.forward = torch.nn.LayerNorm.forward
    original_float = torch.Tensor.float
    torch.Tensor.float = lambda self, *a, **k: self if self.dtype == torch.float64 else original_float(self, *a, **k)
    record_clip(model_py, clip_commit)
    record_vision_aided(model_py, va_root, va_commit, clip_commit)


if __name__ == "__main__":
    main()
