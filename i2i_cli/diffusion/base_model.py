"""A diffusion base model in the diffusers layout (unet/, vae/, text_encoder/, tokenizer/, scheduler/), from a
local folder, a Hub id (`stabilityai/sd-turbo`) or `hf://OWNER/NAME[@REV]`.

Hub ids go through huggingface_hub's snapshot_download (its cache, HF_HUB_OFFLINE, HF_ENDPOINT, HF_TOKEN), asking
only for the five parts img2img-turbo loads: not the repository's single-file checkpoints. A base model that is
neither cached nor reachable is one line naming the repository, its size and the `huggingface-cli download`
command that fetches it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from i2i_cli.errors import WeightsError

SD_TURBO = "stabilityai/sd-turbo"
PARTS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")
# what to fetch: the configs, float32 weights and tokenizer files of PARTS (no fp16 variants, no single files)
PATTERNS = ["model_index.json", "unet/config.json", "unet/diffusion_pytorch_model.safetensors", "vae/config.json",
            "vae/diffusion_pytorch_model.safetensors", "text_encoder/config.json", "text_encoder/model.safetensors",
            "tokenizer/*", "scheduler/*"]
# float32 sizes of PARTS: UNet 865M parameters, OpenCLIP ViT-H text encoder 354M, VAE 84M
KNOWN_SIZES = {SD_TURBO: "about 5.2 GB"}


@dataclass
class BaseModel:
    """The loaded parts, and where they came from (a folder; the repo id when it came through the Hub)."""

    unet: Any
    vae: Any
    text_encoder: Any
    tokenizer: Any
    scheduler_config: dict[str, Any]
    folder: Path
    repo: str | None = None


def _hub_reference(reference: str) -> tuple[str, str | None] | None:
    """(repo, revision) for a Hub id or hf:// reference; None for an existing local folder."""
    text = str(reference)
    if text.startswith(("hf://", "hf:/")):
        text = text.split(":", 1)[1].lstrip("/")
    elif Path(text).exists() or text.startswith((".", "/", "~")) or text.count("/") != 1:
        return None
    repo, _, revision = text.partition("@")
    return repo, revision or None


def download_command(repo: str) -> str:
    return f"huggingface-cli download {repo} --include " + " ".join(f'"{p}"' for p in PATTERNS)


def missing_message(repo: str, why: str) -> str:
    size = KNOWN_SIZES.get(repo, "size unknown")
    return (f"base model {repo} ({size}: {', '.join(PARTS)}) {why}; download it once with `{download_command(repo)}` "
            "(or pass a local folder in the diffusers layout)")


def _snapshot(repo: str, revision: str | None) -> Path:
    from i2i_cli.extras import require_extra

    require_extra("huggingface_hub", "hub", f"the base model {repo}")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
    )

    try:
        return Path(snapshot_download(repo, revision=revision, repo_type="model", allow_patterns=PATTERNS))
    except (RepositoryNotFoundError, GatedRepoError):
        raise WeightsError(f"base model {repo}: no such model repo, or it is gated and no token with access was "
                           "sent; check the name, accept its licence on the Hub, then `hf auth login`") from None
    except LocalEntryNotFoundError:
        raise WeightsError(missing_message(repo, "is not in the Hugging Face cache and the Hub cannot be reached"))\
            from None
    except HfHubHTTPError as exc:
        raise WeightsError(missing_message(repo, f"could not be downloaded ({str(exc).splitlines()[0][:160]})"))\
            from None


def resolve_base_model(reference: str | os.PathLike[str]) -> tuple[Path, str | None]:
    """The folder holding the base model's parts (downloaded or taken from the cache) and its repo id."""
    hub = _hub_reference(str(reference))
    folder = Path(reference).expanduser() if hub is None else _snapshot(*hub)
    if hub is None and not folder.is_dir():
        raise WeightsError(f"{folder}: no such base-model folder; pass a folder with {', '.join(PARTS)} "
                           f"or a Hub id such as {SD_TURBO}")
    missing = [part for part in PARTS if not (folder / part).is_dir()]
    if missing:
        where = hub[0] if hub else str(folder)
        raise WeightsError(f"{where}: not a diffusers base model (no {', '.join(p + '/' for p in missing)}); expected "
                           f"the layout of {SD_TURBO}")
    return folder, hub[0] if hub else None


def load_base_model(reference: str | os.PathLike[str] = SD_TURBO) -> BaseModel:
    """The UNet, VAE, CLIP text encoder, tokenizer and scheduler config of a base model, in float32 on the CPU."""
    from i2i_cli.extras import require_extra

    require_extra("diffusers", "diffusion", "one-step diffusion translators")
    folder, repo = resolve_base_model(reference)
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import AutoTokenizer, CLIPTextModel

    try:
        unet = UNet2DConditionModel.from_pretrained(folder / "unet")
        vae = AutoencoderKL.from_pretrained(folder / "vae")
        text_encoder = CLIPTextModel.from_pretrained(folder / "text_encoder")
        tokenizer = AutoTokenizer.from_pretrained(folder / "tokenizer")
        scheduler = json.loads((folder / "scheduler" / "scheduler_config.json").read_text())
    except (OSError, ValueError, KeyError) as exc:
        raise WeightsError(f"{repo or folder}: cannot load its parts ({str(exc).splitlines()[0][:200]}); "
                           f"re-download it with `{download_command(repo or SD_TURBO)}`") from None
    return BaseModel(unet, vae, text_encoder, tokenizer, scheduler, folder, repo)


def attach_base_model(method: Any) -> None:
    """Load the base model a DiffusionBase method names and hand it over (other methods: nothing to do)."""
    from i2i_cli.models.base import DiffusionBase

    if isinstance(method, DiffusionBase):
        method.attach_base_model(load_base_model(method.base_model_reference()))
