"""A run as a Hugging Face Hub model repo: config.json + model.safetensors + a generated model card.

`write_hub_folder` writes the layout (what `i2i hub push --to-folder` leaves); `push_run` uploads the same
files in one commit with huggingface_hub, so a failed upload leaves no half-finished revision. Loading the
layout back (a folder, or hf://owner/name) lives with the other run loaders in engine/checkpoint.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from i2i_cli import __version__
from i2i_cli.engine import checkpoint as ckpt
from i2i_cli.errors import CheckpointError, ConfigError, I2IError
from i2i_cli.fsutil import TEMP_MARKER, atomic_folder, remove_stale_temporaries

CARD_FILE = "README.md"
SAMPLE_FILE = "sample.png"
EVAL_FILE = "eval.json"
TRAINING_STATE_DIR = "training_state"
_CLIENTS = ("requests", "httpx", "httpx2", "urllib3", "httpcore", "httpcore2")

# The official code each method follows, and that code's licence (from each repository's LICENSE file).
OFFICIAL_LICENCES: dict[str, str] = {
    "junyanz/pytorch-CycleGAN-and-pix2pix": "BSD",
    "taesungp/contrastive-unpaired-translation": "BSD",
    "lyndonzheng/F-LSeSim": "MIT",
    "AlamiMejjati/Unsupervised-Attention-guided-Image-to-Image-Translation": "MIT",
    "clovaai/stargan-v2": "CC BY-NC 4.0 (non-commercial)",
    "fyu/drn": "BSD-3-Clause",
}


@dataclass
class HubRun:
    """What a run knows about itself, gathered for the model card."""

    run_dir: Path
    loaded: Any  # LoadedModel
    eval_json: Path | None = None
    sample: Path | None = None
    seconds: float = 0.0
    files: dict[str, Path] = field(default_factory=dict)  # path in repo -> local file


def _official_repo(code: str) -> str:
    url = code.split()[0] if code else ""
    return url.removeprefix("https://github.com/").rstrip("/")


def licence_of(code: str) -> str:
    return OFFICIAL_LICENCES.get(_official_repo(code), "see the official repository")


def latest_eval_json(run_dir: Path) -> Path | None:
    """The newest JSON under RUN/ (RUN/eval/ included) that holds metrics with their protocol."""
    candidates = sorted(run_dir.glob("*.json")) + sorted((run_dir / "eval").rglob("*.json"))
    found: list[Path] = []
    for path in candidates:
        try:
            obj = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(obj, dict) and "protocol" in obj:
            found.append(path)
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def training_seconds(run_dir: Path) -> float:
    """Wall time trained, summed over resumed sessions (metrics.jsonl's time restarts at each resume)."""
    from i2i_cli.engine.report import read_metrics

    total, session = 0.0, 0.0
    for row in read_metrics(run_dir):
        now = float(row.get("time", 0.0))
        if now < session:
            total += session
        session = now
    return total + session


def gather(run: str | os.PathLike[str], eval_json: Path | None = None) -> HubRun:
    """Load a run's inference weights and find its newest sample grid and eval JSON; refuse a run without weights."""
    path = ckpt.resolve_run_reference(run)  # RUN@best, RUN@step_N
    if not path.exists():
        raise CheckpointError(f"{path}: no such run folder; pass a folder written by `i2i train`")
    if ckpt.is_run_dir(path) and not ckpt.is_hub_folder(path) and ckpt.latest_checkpoint(path) is None:
        raise CheckpointError(f"{path}: the run has no weights yet (no complete checkpoint); train it first, or "
                              "resume it until it saves one")
    loaded = ckpt.load_for_inference(path)
    run_dir = loaded.run_dir
    samples = sorted((run_dir / "samples").glob("*.png")) if (run_dir / "samples").is_dir() else []
    if not samples and (run_dir / SAMPLE_FILE).is_file():
        samples = [run_dir / SAMPLE_FILE]
    if eval_json is not None and not Path(eval_json).is_file():
        raise ConfigError(f"--eval-json {eval_json}: no such file (write one with `i2i eval --json FILE`)")
    found = Path(eval_json) if eval_json else latest_eval_json(run_dir)
    if found is None and (run_dir / EVAL_FILE).is_file():
        found = run_dir / EVAL_FILE
    return HubRun(run_dir, loaded, found, samples[-1] if samples else None, training_seconds(run_dir))


def inference_tensors(loaded: Any) -> dict[str, Any]:
    """The weights translation needs, EMA copies already applied by the loader; no discriminators."""
    state = loaded.method.saved_state_dict()
    return {k: state[k] for k in ckpt.inference_state_keys(loaded.method)}


def shared_run_config(loaded: Any) -> dict[str, Any]:
    """The run's config as published: the dataset named by its folder, never the local path it was read from."""
    obj = loaded.run_config.to_json()
    data = dict(obj.get("data") or {})
    if data.get("root"):
        data["root"] = Path(data["root"]).name
    return {**obj, "data": data}


def hub_config(hub_run: HubRun) -> dict[str, Any]:
    """config.json: the run's resolved config (what the loaders rebuild the method from) + where it came from."""
    loaded = hub_run.loaded
    return {**shared_run_config(loaded), "library_name": "i2i",
            "i2i_checkpoint": {"step": loaded.step, "used_ema": loaded.used_ema, "i2i_version": __version__,
                               "seconds_trained": round(hub_run.seconds, 1)}}


def write_hub_folder(run: str | os.PathLike[str], folder: str | os.PathLike[str], *, repo_id: str = "OWNER/NAME",
                     include_training_state: bool = False, eval_json: Path | None = None,
                     overwrite: bool = False) -> list[Path]:
    """Write the Hub layout of `run` into `folder` (refused if it has files, unless overwrite); the files written."""
    target = Path(folder)
    if target.exists() and any(target.iterdir()) and not overwrite:
        raise ConfigError(f"{target}: the folder is not empty; pick a new one or pass --overwrite")
    hub_run = gather(run, eval_json)
    remove_stale_temporaries(target.parent, TEMP_MARKER + target.name, recursive=False)
    with atomic_folder(target, replace=True, mode=0o755) as staging:  # the layout is meant to be shared
        _write_layout(hub_run, staging, repo_id, include_training_state)
        for path in staging.rglob("*"):
            path.chmod(0o755 if path.is_dir() else 0o644)
    return sorted(p for p in target.rglob("*") if p.is_file())


def _write_layout(hub_run: HubRun, folder: Path, repo_id: str, include_training_state: bool) -> None:
    loaded = hub_run.loaded
    metadata = {"i2i_version": __version__, "method": loaded.run_config.method, "step": str(loaded.step),
                "format": "i2i-hub"}
    ckpt.save_tensors(folder / ckpt.HUB_WEIGHTS_FILE, inference_tensors(loaded), metadata)
    (folder / ckpt.CONFIG_FILE).write_text(json.dumps(hub_config(hub_run), indent=2) + "\n")
    if hub_run.sample is not None:
        shutil.copyfile(hub_run.sample, folder / SAMPLE_FILE)
    if hub_run.eval_json is not None:
        shutil.copyfile(hub_run.eval_json, folder / EVAL_FILE)
    if include_training_state:
        if ckpt.is_hub_folder(loaded.checkpoint):
            raise ConfigError(f"--include-training-state: {hub_run.run_dir} is a Hub folder; it has no trainer state")
        shutil.copytree(loaded.checkpoint, folder / TRAINING_STATE_DIR / loaded.checkpoint.name)
    (folder / CARD_FILE).write_text(model_card(hub_run, repo_id, include_training_state))


def _tags(loaded: Any) -> list[str]:
    method = loaded.method
    tags = ["i2i", "image-to-image", method.name, "gan", loaded.run_config.data.get("layout", "")]
    if method.multi_domain:
        tags.append("multi-domain")
    return [t for t in dict.fromkeys(tags) if t]


def _yaml_list(values: list[str]) -> str:
    return "\n".join(f"- {json.dumps(v)}" for v in values)


def _eval_section(hub_run: HubRun) -> list[str]:
    if hub_run.eval_json is None:
        return ["No evaluation was recorded for this run (`i2i eval --checkpoint RUN --json RUN/eval.json` adds one)."]
    obj = json.loads(hub_run.eval_json.read_text())
    values = {k: v for k, v in obj.items() if k not in ("protocol", "bad_files") and not isinstance(v, (dict, list))}
    lines = ["| metric | value |", "| --- | --- |"] + [f"| {k} | {v} |" for k, v in values.items()]
    lines += ["", "The protocol these numbers were measured with (they compare only with numbers measured the same "
              f"way; the file is `{EVAL_FILE}` in this repo):", "", "```json",
              json.dumps(obj.get("protocol", {}), indent=2), "```"]
    return lines


def _dataset_section(loaded: Any) -> list[str]:
    data = loaded.run_config.data
    counts = data.get("counts") or {}
    root = data.get("root", "")
    lines = [f"- name: `{Path(root).name if root else 'unknown'}`", f"- layout: {data.get('layout', 'unknown')}"]
    if counts:
        lines.append("- images: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    if loaded.method.multi_domain:
        lines.append(f"- domains: {', '.join(loaded.method.domains)}")
    return lines


def _usage_section(loaded: Any, repo_id: str) -> list[str]:
    style = loaded.method.takes_style_reference
    cli_extra = f" --domain {loaded.method.domains[-1]}" if style else ""
    py_extra = f", domain={loaded.method.domains[-1]!r}, seed=0" if style else ""
    return ["```bash", "pip install 'i2i[hub]'",
            f"i2i translate --checkpoint hf://{repo_id} INPUTS/ OUTPUTS/{cli_extra}", "```", "", "```python",
            "import i2i_cli", "from PIL import Image", "",
            f't = i2i_cli.load("hf://{repo_id}", device="auto")',
            f'out = t(Image.open("input.png").convert("RGB"){py_extra})  # a PIL image, the input\'s size',
            f't.translate_folder("INPUTS/", "OUTPUTS/"{py_extra})', "```"]


def model_card(hub_run: HubRun, repo_id: str, include_training_state: bool = False) -> str:
    """README.md: YAML metadata (licence, tags) and what the run knows: method, data, config, training, eval."""
    loaded = hub_run.loaded
    method = loaded.method
    code = method.code
    hours = hub_run.seconds / 3600
    total = loaded.run_config.train.get("total_steps")
    front = ["---", "library_name: i2i", "pipeline_tag: image-to-image", "license: other",
             f"license_name: {json.dumps('official code: ' + licence_of(code))}", "tags:", _yaml_list(_tags(loaded)),
             "---", ""]
    body = [f"# {repo_id.split('/')[-1]}: {method.name} ({loaded.run_config.data.get('layout', '')})", "",
            f"A {method.name} translator trained with i2i {loaded.run_config.i2i_version}. "
            f"{method.summary}.", "", "## Method", "",
            f"- paper: {method.paper}", f"- official code: {code}", f"- the official code's licence: {licence_of(code)}",
            "", "## Dataset", "", *_dataset_section(loaded), "", "## Training", "",
            f"- steps: {loaded.step}" + (f" of {total}" if total else ""),
            f"- time trained: {hub_run.seconds:.0f} s ({hours:.2f} h)",
            f"- weights: {'EMA copies of ' + ', '.join(method.ema_networks()) if loaded.used_ema else 'the trained networks'}"
            " (`model.safetensors`, inference networks only: no discriminators)",
            "- training state (optimizers, to resume): " + (f"`{TRAINING_STATE_DIR}/`" if include_training_state
                                                            else "not included"), "",
            "## Evaluation", "", *_eval_section(hub_run), "", "## Samples", ""]
    body.append(f"![training samples]({SAMPLE_FILE})" if hub_run.sample else "No sample grid was saved by this run.")
    body += ["", "## How to use it", "", *_usage_section(loaded, repo_id), "", "## Resolved config", "",
             "```json", json.dumps(shared_run_config(loaded), indent=2), "```", ""]
    return "\n".join(front + body)


# --- pushing ------------------------------------------------------------------------------------------


@dataclass
class PushResult:
    repo_id: str
    revision: str
    commit_url: str
    files: list[str]


def _hub_error(exc: Exception, repo_id: str) -> I2IError:
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

    status = getattr(getattr(exc, "response", None), "status_code", None)
    if isinstance(exc, RepositoryNotFoundError) or status in (401, 403):
        return ConfigError(f"{repo_id}: the Hub refused access (no such repo you can write to, or no token); log in "
                           "with `hf auth login` or set HF_TOKEN to a token with write access")
    if isinstance(exc, HfHubHTTPError):
        return ConfigError(f"{repo_id}: the Hub refused the upload ({str(exc).splitlines()[0][:200]})")
    return ConfigError(f"{repo_id}: cannot reach the Hub ({type(exc).__name__}: {str(exc).splitlines()[0][:200]}); "
                       "check the network or HF_ENDPOINT")


@contextlib.contextmanager
def hub_call(repo_id: str) -> Iterator[None]:
    """Turn the Hub client's failures (HTTP errors, refused access, no connection) into one-line errors."""
    from huggingface_hub.errors import HfHubHTTPError

    try:
        yield
    except Exception as exc:
        # connection errors are the HTTP client's own (requests, httpx or httpx2 by huggingface_hub version)
        if isinstance(exc, (HfHubHTTPError, OSError)) or type(exc).__module__.split(".")[0] in _CLIENTS:
            raise _hub_error(exc, repo_id) from None
        raise


def push_run(run: str | os.PathLike[str], repo_id: str, *, private: bool = False, revision: str | None = None,
             include_training_state: bool = False, eval_json: Path | None = None, token: str | None = None,
             message: str | None = None) -> PushResult:
    """Upload a run's Hub layout as one commit (create_commit), creating the repo (and branch) when missing."""
    from i2i_cli.extras import require_extra

    require_extra("huggingface_hub", "hub", "i2i hub push")
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise ConfigError(f"{repo_id}: a Hub repo is OWNER/NAME")
    from huggingface_hub import CommitOperationAdd, HfApi

    with tempfile.TemporaryDirectory(prefix="i2i-hub-") as tmp:
        folder = Path(tmp) / "repo"
        files = write_hub_folder(run, folder, repo_id=repo_id, include_training_state=include_training_state,
                                 eval_json=eval_json)
        operations = [CommitOperationAdd(path_in_repo=p.relative_to(folder).as_posix(), path_or_fileobj=str(p))
                      for p in files]
        api = HfApi(token=token)
        with hub_call(repo_id):
            api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
            if revision:
                api.create_branch(repo_id, branch=revision, exist_ok=True, repo_type="model")
            info = api.create_commit(repo_id, operations, commit_message=message or f"i2i hub push: {Path(run).name}",
                                     revision=revision, repo_type="model")
    return PushResult(repo_id, revision or "main", info.commit_url, [o.path_in_repo for o in operations])
