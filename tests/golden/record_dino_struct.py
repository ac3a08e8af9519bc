"""Record tests/golden/dino_struct.pt: img2img-turbo's DINO-Struct distance on small images, tiny random ViT.

Runs outside CI against two checkouts named by environment variables (only numbers are saved):

- I2I_OFFICIAL_IMG2IMG_TURBO: GaParmar/img2img-turbo (src/my_utils/dino_struct.py: `DinoStructureLoss`);
- I2I_OFFICIAL_DINO: facebookresearch/dino (vision_transformer.py: the `VisionTransformer` torch.hub builds).

The commit of each checkout comes from `git rev-parse HEAD` in it, or I2I_OFFICIAL_<NAME>_COMMIT. For example:

    I2I_OFFICIAL_IMG2IMG_TURBO=/tmp/official/turbo I2I_OFFICIAL_DINO=/tmp/official/dino \\
    python tests/golden/record_dino_struct.py

What is patched, and why: `DinoStructureLoss` loads `torch.hub.load('facebookresearch/dino:main', 'dino_vitb8')`
(an 86M-parameter ViT-B/8 downloaded from dl.fbaipublicfiles.com). The recorder answers that call with DINO's own
`VisionTransformer` built tiny (patch 8, 224 px position grid, width 24, 12 blocks, 2 heads, MLP ratio 2) and
loaded with `seeded_tiny_vit` (rounded to float32 by the float32 model, then cast to float64; the test rebuilds
the same weights from the seed), and makes the extractor's
`get_head_num` / `get_embedding_dim` (hard-coded 12 / 768 from the model name) return the tiny model's. The
preprocessing (PIL Resize(224), ToTensor, ImageNet Normalize), the key reshape, the self-similarity and the MSE
run as they are; the model and inputs are cast to float64 (the official code runs in whatever dtype it is given).
Recorded per image pair: the official `calculate_global_ssim_loss(output[None], input[None])`, the first rows
of the input's self-similarity matrix and checks of its preprocessed tensor; and the same for small normalised
tensors given to the extractor directly (SMALL_SHAPES); the images themselves (uint8, small) are stored.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from functools import partial
from pathlib import Path

import numpy as np
import torch

OUT = Path(__file__).resolve().parent / "dino_struct.pt"
VIT_SEED, WIDTH, DEPTH, HEADS, MLP_RATIO, PATCH = 2024, 24, 12, 2, 2.0, 8
# (height, width) of each input; outputs have the same size. 40x56 and 56x40 give non-square patch grids after
# Resize(224) (224x313 -> 28x39 patches), so DINO's bicubic position interpolation is exercised.
SIZES = [(40, 56), (56, 40), (48, 48)]
ROWS = 4  # rows of each input's self-similarity stored (the whole matrices at 224 px would be megabytes)
# normalised tensors given to the extractor directly (no Resize(224)): small patch grids, 4x6 and 6x4, so the
# network, keys, self-similarity and position interpolation are checked in float64 at a cost CI can pay
SMALL_SHAPES = [(1, 3, 32, 48), (1, 3, 48, 32)]


def tiny_vit_shapes() -> dict[str, tuple[int, ...]]:
    """The tiny ViT's state-dict shapes in DINO's key layout (i2i's DinoViT has the same keys)."""
    tokens = (224 // PATCH) ** 2 + 1
    hidden = int(WIDTH * MLP_RATIO)
    shapes: dict[str, tuple[int, ...]] = {"cls_token": (1, 1, WIDTH), "pos_embed": (1, tokens, WIDTH),
                                          "patch_embed.proj.weight": (WIDTH, 3, PATCH, PATCH),
                                          "patch_embed.proj.bias": (WIDTH,)}
    for i in range(DEPTH):
        b = f"blocks.{i}."
        shapes.update({b + "norm1.weight": (WIDTH,), b + "norm1.bias": (WIDTH,),
                       b + "attn.qkv.weight": (3 * WIDTH, WIDTH), b + "attn.qkv.bias": (3 * WIDTH,),
                       b + "attn.proj.weight": (WIDTH, WIDTH), b + "attn.proj.bias": (WIDTH,),
                       b + "norm2.weight": (WIDTH,), b + "norm2.bias": (WIDTH,),
                       b + "mlp.fc1.weight": (hidden, WIDTH), b + "mlp.fc1.bias": (hidden,),
                       b + "mlp.fc2.weight": (WIDTH, hidden), b + "mlp.fc2.bias": (WIDTH,)})
    shapes.update({"norm.weight": (WIDTH,), "norm.bias": (WIDTH,)})
    return shapes


def seeded_tiny_vit(seed: int = VIT_SEED) -> dict[str, torch.Tensor]:
    """Float64 weights from one generator in key order: norms near 1, the rest N(0, 1/fan_in) (so the 12
    blocks keep activations of order 1 and the keys carry structure)."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in tiny_vit_shapes().items():
        noise = torch.randn(shape, generator=generator, dtype=torch.float64)
        if "norm" in key and key.endswith("weight"):
            state[key] = 1 + 0.1 * noise
        elif key.endswith("bias") or key in ("cls_token", "pos_embed"):
            state[key] = 0.1 * noise
        else:
            state[key] = noise / np.sqrt(np.prod(shape[1:]))
    return state


def seeded_images(seed: int = 7) -> list[tuple[np.ndarray, np.ndarray]]:
    """(input, output) uint8 pairs: smooth random images, the output a shifted, recoloured input."""
    rng = np.random.default_rng(seed)
    pairs = []
    for h, w in SIZES:
        base = rng.integers(0, 256, (h // 8, w // 8, 3)).repeat(8, 0).repeat(8, 1)
        noise = rng.integers(-30, 31, (h, w, 3))
        source = np.clip(base + noise, 0, 255).astype(np.uint8)
        output = np.clip(np.roll(source.astype(int), 3, axis=1) * 0.8 + 20, 0, 255).astype(np.uint8)
        pairs.append((source, output))
    return pairs


def checkout(name: str) -> tuple[Path, str]:
    root = os.environ.get(f"I2I_OFFICIAL_{name}")
    if not root:
        sys.exit(f"set I2I_OFFICIAL_{name} to a checkout of the official repository")
    commit = os.environ.get(f"I2I_OFFICIAL_{name}_COMMIT") or subprocess.run(
        ["git", "-C", root, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    return Path(root), commit


def _import(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    from PIL import Image

    turbo, turbo_commit = checkout("IMG2IMG_TURBO")
    dino, dino_commit = checkout("DINO")
    sys.path.insert(0, str(dino))  # vision_transformer.py imports DINO's utils (trunc_normal_)
    vits = _import(dino / "vision_transformer.py", "dino_vision_transformer")
    tiny = vits.VisionTransformer(patch_size=PATCH, embed_dim=WIDTH, depth=DEPTH, num_heads=HEADS,
                                  mlp_ratio=MLP_RATIO, qkv_bias=True, norm_layer=partial(torch.nn.LayerNorm, eps=1e-6))
    tiny.load_state_dict(seeded_tiny_vit(), strict=True)
    tiny = tiny.double().eval()
    torch.hub.load = lambda repo, name: tiny  # noqa: ARG005 - the official call, answered with the tiny ViT
    official = _import(turbo / "src" / "my_utils" / "dino_struct.py", "official_dino_struct")
    official.VitExtractor.get_head_num = lambda self: HEADS
    official.VitExtractor.get_embedding_dim = lambda self: WIDTH
    loss = official.DinoStructureLoss.__new__(official.DinoStructureLoss)
    # the constructor's body with device "cpu" instead of its hard-coded "cuda"
    loss.extractor = official.VitExtractor(model_name="dino_vitb8", device="cpu")
    transforms = official.torchvision.transforms
    loss.preprocess = transforms.Compose([transforms.Resize(224), transforms.ToTensor(),
                                          transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])
    record = {"official_repo": "GaParmar/img2img-turbo", "official_commit": turbo_commit,
              "dino_repo": "facebookresearch/dino", "dino_commit": dino_commit, "vit_seed": VIT_SEED,
              "inputs": [], "outputs": [], "distances": [], "input_self_similarity": [], "preprocessed_corner": [],
              "preprocessed_shape": [], "preprocessed_sum": [], "small_inputs": [], "small_outputs": [],
              "small_distances": [], "small_input_self_similarity": []}
    for source, output in seeded_images():
        a = loss.preprocess(Image.fromarray(source)).double()
        b = loss.preprocess(Image.fromarray(output)).double()
        with torch.no_grad():
            value = loss.calculate_global_ssim_loss(b[None], a[None])
            sim = loss.extractor.get_keys_self_sim_from_input(a[None], layer_num=11)
        record["inputs"].append(torch.from_numpy(source))
        record["outputs"].append(torch.from_numpy(output))
        record["distances"].append(float(value))
        record["input_self_similarity"].append(sim[0, :ROWS].clone())
        record["preprocessed_shape"].append(torch.tensor(a.shape))
        record["preprocessed_sum"].append(a.sum(dim=(1, 2)))
        record["preprocessed_corner"].append(a[:, :8, :8].clone())
    generator = torch.Generator().manual_seed(11)
    for shape in SMALL_SHAPES:
        a = torch.randn(shape, generator=generator, dtype=torch.float64)
        b = a + 0.5 * torch.randn(shape, generator=generator, dtype=torch.float64)
        with torch.no_grad():
            value = loss.calculate_global_ssim_loss(b, a)
            sim = loss.extractor.get_keys_self_sim_from_input(a, layer_num=11)
        record["small_inputs"].append(a)
        record["small_outputs"].append(b)
        record["small_distances"].append(float(value))
        record["small_input_self_similarity"].append(sim[0].clone())
    torch.save(record, OUT)
    print(f"wrote {OUT}: distances {record['distances']}")


if __name__ == "__main__":
    main()
