"""A tiny random diffusion base model in the layout of stabilityai/sd-turbo (unet/, vae/, text_encoder/,
tokenizer/, scheduler/), built once per process: what the img2img-turbo methods' tests load instead of sd-turbo.
The configs are the golden recorder's (tests/golden/record_turbo_generator.py)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from tests.golden.record_turbo_generator import SCHEDULER, TINY_TEXT, TINY_UNET, TINY_VAE

_BUILT: dict[str, Path] = {}


def write_tiny_sd_turbo(folder: Path, seed: int = 0) -> Path:
    """The five parts, seeded, with a character-level CLIP tokenizer (a-z, start and end tokens)."""
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(seed)
    folder.mkdir(parents=True, exist_ok=True)
    UNet2DConditionModel(**TINY_UNET).save_pretrained(folder / "unet")
    AutoencoderKL(**TINY_VAE).save_pretrained(folder / "vae")
    CLIPTextModel(CLIPTextConfig(**TINY_TEXT)).save_pretrained(folder / "text_encoder")
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for c in "abcdefghijklmnopqrstuvwxyz":
        vocab[c], vocab[c + "</w>"] = len(vocab), len(vocab) + 1
    source = folder / "src"
    source.mkdir(exist_ok=True)
    (source / "vocab.json").write_text(json.dumps(vocab))
    (source / "merges.txt").write_text("#version: 0.2\n")
    CLIPTokenizer(str(source / "vocab.json"), str(source / "merges.txt"),
                  model_max_length=77).save_pretrained(folder / "tokenizer")
    shutil.rmtree(source)
    (folder / "scheduler").mkdir(exist_ok=True)
    (folder / "scheduler" / "scheduler_config.json").write_text(
        json.dumps({"_class_name": "EulerDiscreteScheduler", **SCHEDULER}))
    (folder / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    return folder


def tiny_base_model() -> Path:
    """One tiny sd-turbo-layout folder per test process (under the temporary folder; reused)."""
    key = str(os.getpid())
    if key not in _BUILT:
        _BUILT[key] = write_tiny_sd_turbo(Path(tempfile.mkdtemp(prefix="i2i-tiny-sd-turbo-")))
    return _BUILT[key]
