"""A diffusion base model in the layout of stabilityai/sd-turbo (tiny random UNet / VAE / CLIP text encoder /
tokenizer / scheduler) loads from a local folder and through huggingface_hub's real client from a loopback Hub
(tests/test_hub.py's FakeHub), only the parts img2img-turbo needs are fetched, the cache then serves it offline,
and a base model neither cached nor reachable is one line naming the repository, its size and the download."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("diffusers")
pytest.importorskip("huggingface_hub")

from i2i_cli.diffusion.base_model import PATTERNS, load_base_model  # noqa: E402
from i2i_cli.errors import WeightsError  # noqa: E402
from tests.golden.record_turbo_generator import SCHEDULER, TINY_TEXT, TINY_UNET, TINY_VAE  # noqa: E402
from tests.test_hub import ROOT, FakeHub, serve_hub  # noqa: E402

LOADER = """
import json, sys
from i2i_cli.diffusion.base_model import load_base_model
from i2i_cli.errors import WeightsError
out = {}
for reference in sys.argv[1:]:
    try:
        model = load_base_model(reference)
        out[reference] = {"repo": model.repo, "unet": type(model.unet).__name__, "folder": str(model.folder),
                          "tokens": model.tokenizer("a cat").input_ids, "scheduler": model.scheduler_config}
    except WeightsError as exc:
        out[reference] = {"error": str(exc)}
print(json.dumps(out))
"""


def _tiny_sd_turbo(folder: Path) -> Path:
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    UNet2DConditionModel(**TINY_UNET).save_pretrained(folder / "unet")
    AutoencoderKL(**TINY_VAE).save_pretrained(folder / "vae")
    CLIPTextModel(CLIPTextConfig(**TINY_TEXT)).save_pretrained(folder / "text_encoder")
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for c in "abcdefghijklmnopqrstuvwxyz":
        vocab[c], vocab[c + "</w>"] = len(vocab), len(vocab) + 1
    (folder / "src").mkdir()
    (folder / "src" / "vocab.json").write_text(json.dumps(vocab))
    (folder / "src" / "merges.txt").write_text("#version: 0.2\n")
    CLIPTokenizer(str(folder / "src" / "vocab.json"), str(folder / "src" / "merges.txt"),
                  model_max_length=77).save_pretrained(folder / "tokenizer")
    shutil.rmtree(folder / "src")
    (folder / "scheduler").mkdir()
    (folder / "scheduler" / "scheduler_config.json").write_text(json.dumps({"_class_name": "EulerDiscreteScheduler",
                                                                             **SCHEDULER}))
    (folder / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    return folder


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _tiny_sd_turbo(tmp_path_factory.mktemp("sd_turbo_layout"))


def test_a_local_folder_loads_and_a_folder_without_a_part_is_one_line(layout: Path, tmp_path: Path) -> None:
    model = load_base_model(layout)
    assert type(model.unet).__name__ == "UNet2DConditionModel" and model.repo is None
    assert model.vae.config.block_out_channels == TINY_VAE["block_out_channels"]
    assert model.scheduler_config["prediction_type"] == "epsilon"
    broken = shutil.copytree(layout, tmp_path / "broken")
    shutil.rmtree(broken / "vae")
    with pytest.raises(WeightsError, match=r"not a diffusers base model \(no vae/\)"):
        load_base_model(broken)


@pytest.mark.slow  # two fresh processes importing diffusers: 134 s on this busy 2-core machine
def test_through_the_hub_client_only_the_needed_parts_then_offline_from_the_cache(layout: Path,
                                                                                  tmp_path: Path) -> None:
    hub = FakeHub()
    files = {p.relative_to(layout).as_posix(): p.read_bytes() for p in layout.rglob("*") if p.is_file()}
    files["sd_turbo.safetensors"] = b"a single-file checkpoint the loader must not fetch"
    hub.repos["tiny/sd-turbo"] = {"private": False, "branches": {"main": "a" * 40}, "commits": {"a" * 40: files}}
    env = {"HF_HUB_CACHE": str(tmp_path / "hf_cache"), "HF_HOME": str(tmp_path / "hf_home"),
           "HF_HUB_DISABLE_XET": "1"}
    with serve_hub(hub) as endpoint:
        online = _i2i_python(["tiny/sd-turbo", "hf://tiny/sd-turbo@main"], {**env, "HF_ENDPOINT": endpoint})
    for reference in ("tiny/sd-turbo", "hf://tiny/sd-turbo@main"):
        assert online[reference]["repo"] == "tiny/sd-turbo" and online[reference]["unet"] == "UNet2DConditionModel"
        assert online[reference]["tokens"] == [0, 3, 6, 2, 41, 1]
    fetched = {r.split("/resolve/", 1)[1].split("/", 1)[1] for r in hub.requests if "/resolve/" in r}
    assert "sd_turbo.safetensors" not in fetched and "unet/diffusion_pytorch_model.safetensors" in fetched
    assert fetched <= {f for f in files if f != "sd_turbo.safetensors"} and len(PATTERNS) == 9
    offline = _i2i_python(["tiny/sd-turbo", "stabilityai/sd-turbo"], {**env, "HF_HUB_OFFLINE": "1"})
    assert offline["tiny/sd-turbo"]["folder"] == online["tiny/sd-turbo"]["folder"]
    message = offline["stabilityai/sd-turbo"]["error"]
    assert "\n" not in message and "base model stabilityai/sd-turbo (about 5.2 GB" in message
    assert "`huggingface-cli download stabilityai/sd-turbo --include" in message


def _i2i_python(references: list[str], env: dict[str, str]) -> dict:
    """LOADER in a fresh process (huggingface_hub reads HF_ENDPOINT / HF_HUB_OFFLINE when it is imported)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    done = subprocess.run([sys.executable, "-c", LOADER, *references], cwd=ROOT, capture_output=True, text=True,
                          env={**base, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", **env}, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])
