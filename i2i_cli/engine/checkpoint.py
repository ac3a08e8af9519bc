"""Run directories and checkpoints: the one place that reads and writes them.

    RUN/config.json                       resolved config: method, its options, domains, data, training options
    RUN/latest.json                       {"step": N, "dir": "checkpoints/step_000000N"}, replaced atomically
    RUN/checkpoints/step_XXXXXXXX/        weights.safetensors, ema.safetensors (if any), state.pt, meta.json
    RUN/checkpoints/best/                 the best evaluated checkpoint (--keep-best), RUN/best.json says which
    RUN/metrics.jsonl, RUN/samples/, RUN/tb/, RUN/index.html

A checkpoint is named RUN (its newest), RUN@last (the same), RUN@best or RUN@step_N (resolve_run_reference).

A checkpoint folder is written under a temporary name and renamed when complete, and latest.json is updated
after that: a run killed at any moment still has a complete last checkpoint. Weights are safetensors; the
trainer state is loaded with torch.load(weights_only=True): nothing from a file is ever executed.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from i2i_cli import __version__
from i2i_cli.errors import CheckpointError, ConfigError
from i2i_cli.fsutil import atomic_folder, atomic_write_json, remove_stale_temporaries

FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
LATEST_FILE = "latest.json"
WEIGHTS_FILE = "weights.safetensors"
EMA_FILE = "ema.safetensors"
STATE_FILE = "state.pt"
HUB_WEIGHTS_FILE = "model.safetensors"  # a Hub-layout folder: config.json + model.safetensors + README.md
HUB_PREFIX = "hf://"
BEST_DIR = "best"  # RUN/checkpoints/best: a copy of the best evaluated checkpoint (never pruned)
BEST_FILE = "best.json"  # RUN/best.json: {"metric", "key", "mode", "value", "step"}


@dataclass
class RunConfig:
    """Everything needed to rebuild a run's model: saved as RUN/config.json."""

    method: str
    config: dict[str, Any]
    domains: list[str]
    data: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    i2i_version: str = __version__
    format: int = FORMAT_VERSION

    def to_json(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "i2i_version": self.i2i_version,
            "method": self.method,
            "domains": self.domains,
            "config": self.config,
            "data": self.data,
            "train": self.train,
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any], source: Path) -> RunConfig:
        missing = [key for key in ("method", "config") if key not in obj]
        if missing:
            raise CheckpointError(f"{source}: not an i2i run config (no {', '.join(missing)})")
        fmt = obj.get("format", FORMAT_VERSION)
        if fmt > FORMAT_VERSION:
            raise CheckpointError(
                f"{source}: written by i2i {obj.get('i2i_version', '?')} (format {fmt}); this i2i {__version__} "
                f"reads format {FORMAT_VERSION}: upgrade i2i"
            )
        return cls(
            method=obj["method"],
            config=dict(obj["config"]),
            domains=list(obj.get("domains") or ["A", "B"]),
            data=dict(obj.get("data") or {}),
            train=dict(obj.get("train") or {}),
            i2i_version=obj.get("i2i_version", "?"),
            format=fmt,
        )


def write_run_config(run_dir: Path, run_config: RunConfig) -> None:
    atomic_write_json(run_dir / CONFIG_FILE, run_config.to_json())


def read_run_config(run_dir: Path) -> RunConfig:
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        raise CheckpointError(f"{run_dir}: no {CONFIG_FILE}; pass a run folder written by `i2i train`")
    try:
        obj = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: unreadable ({exc}); restore it or retrain") from exc
    return RunConfig.from_json(obj, path)


def is_run_dir(path: Path) -> bool:
    return (path / CONFIG_FILE).is_file()


# --- starting and resuming a run folder ------------------------------------------------------------

# What i2i writes into a run folder: all that --overwrite removes (anything else there is the user's).
RUN_FILES = ("checkpoints", "samples", "tb", "metrics.jsonl", "latest.json", "index.html", CONFIG_FILE, "best.json",
             "eval")


def prepare_run_dir(out: Path, resume: bool, overwrite: bool) -> None:
    """Refuse an --out that would lose work (another run, a folder that is not a run); with --overwrite, remove
    only i2i's own files of an earlier run."""
    if resume:
        check_resumable(out)
        return
    if not out.exists() or not [p for p in out.iterdir() if p.name != LOCK_FILE]:
        return
    if is_run_dir(out):
        other = read_run_config(out).method
        if not overwrite:
            raise ConfigError(
                f"{out} already holds a {other} run: pass --resume to continue it, --overwrite to start it again, "
                "or choose another --out"
            )
        for name in RUN_FILES:
            target = out / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
        return
    if not overwrite:
        raise ConfigError(f"{out} exists and is not an i2i run: choose another --out (or --overwrite to write into it)")


def remove_run(out: Path, whole_folder: bool) -> None:
    """Undo a new run that failed before its first step: the folder it made, or only i2i's files in a folder
    that was there (anything else there is the user's)."""
    if whole_folder:
        shutil.rmtree(out, ignore_errors=True)
        return
    for name in (*RUN_FILES, LOCK_FILE):
        target = out / name
        if target.is_dir():
            shutil.rmtree(target, ignore_errors=True)
        elif target.exists():
            target.unlink()


def check_resumable(out: Path) -> None:
    """--resume needs a run with a checkpoint: a Hub folder (inference weights only) or a run killed before its
    first checkpoint is refused with the reason, never silently started from step 1."""
    if not is_run_dir(out):
        raise CheckpointError(f"{out}: nothing to resume (no config.json); drop --resume to start a new run")
    if is_hub_folder(out):
        raise CheckpointError(f"{out}: a Hub folder (inference weights, no trainer state) is not a run; train a new "
                              "run with another --out")
    if latest_checkpoint(out) is None:
        raise CheckpointError(f"{out}: the run has no checkpoint yet (stopped before its first save), so there is "
                              "nothing to resume; start it again with --overwrite")


LOCK_FILE = ".i2i-train.lock"


@contextmanager
def run_lock(out: Path, take: bool = True) -> Iterator[None]:
    """An advisory lock on RUN/.i2i-train.lock while a trainer writes the run: a second trainer is refused with
    the first one's pid. The kernel drops it when the process ends, so kill -9 leaves no stale lock."""
    if not take:
        yield
        return
    import fcntl

    try:
        out.mkdir(parents=True, exist_ok=True)
        handle = open(out / LOCK_FILE, "a+")  # noqa: SIM115 - held open for the whole run
    except OSError as exc:
        raise ConfigError(f"--out {out}: cannot write the run folder ({exc.strerror})") from None
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            pid = handle.read().strip() or "?"
            raise ConfigError(f"{out}: another `i2i train` (pid {pid}) is writing this run; wait for it to end or "
                              "choose another --out") from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        remove_stale_temporaries(out)  # a killed trainer's half-written checkpoint or report
        yield
    finally:
        handle.close()


def data_differences(saved: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """The dataset as an option: another folder's files (its fingerprint), or another path when the run
    predates fingerprints."""
    if saved.get("fingerprint") and new.get("fingerprint"):
        if saved["fingerprint"] == new["fingerprint"]:
            return []
        return [f"data ({saved.get('root')} {_count(saved)} -> {new.get('root')} {_count(new)}: other files)"]
    if saved.get("root") and new.get("root") and saved["root"] != new["root"]:
        return [f"data ({saved['root']} -> {new['root']})"]
    return []


def _count(data: dict[str, Any]) -> str:
    total = sum(n for groups in (data.get("counts") or {}).values() for n in groups.values())
    return f"[{total} files]"


def config_differences(saved: RunConfig, new: RunConfig, config_may_change: Iterable[str] = (),
                       train_may_change: Iterable[str] = ()) -> list[str]:
    """'key (old -> new)' for every option that differs, except those a resumed run may change."""
    config_free, train_free = set(config_may_change), set(train_may_change)
    diffs = []
    if saved.method != new.method:
        diffs.append(f"method ({saved.method} -> {new.method})")
    for key in sorted(set(saved.config) | set(new.config)):
        a, b = saved.config.get(key), new.config.get(key)
        if isinstance(a, list):  # JSON has no tuples: a saved (1, 2) reads back as [1, 2]
            a = tuple(a)
        if isinstance(b, list):
            b = tuple(b)
        if key not in config_free and a != b:
            diffs.append(f"{key} ({a} -> {b})")
    for key in sorted(set(saved.train) | set(new.train)):
        if key not in train_free and saved.train.get(key) != new.train.get(key):
            diffs.append(f"{key} ({saved.train.get(key)} -> {new.train.get(key)})")
    return diffs + data_differences(saved.data, new.data)


def refuse_changed_config(out: Path, new: RunConfig, config_may_change: Iterable[str] = (),
                          train_may_change: Iterable[str] = ()) -> None:
    """--resume with options that change what is trained: one line listing them, before any work."""
    diffs = config_differences(read_run_config(out), new, config_may_change, train_may_change)
    if diffs:
        raise ConfigError(f"{out}: cannot resume, the config differs: {'; '.join(diffs)} "
                          "(use the run's own options, or --overwrite to start again)")


# --- building a method from a config ----------------------------------------------------------------


def build_config(method: str, values: dict[str, Any], source: str = "config") -> Any:
    """A method's config dataclass from a dict, refusing keys the method does not have."""
    import dataclasses

    from i2i_cli.models import registry

    try:
        cls = registry.method_class(method)
    except KeyError:
        raise CheckpointError(
            f"{source}: unknown method '{method}'; this i2i knows {', '.join(registry.list_methods())}"
        ) from None
    names = {f.name for f in dataclasses.fields(cls.config_class)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise CheckpointError(f"{source}: options {', '.join(unknown)} are not {method} options (another version?)")
    kwargs = dict(values)
    for f in dataclasses.fields(cls.config_class):
        if f.name in kwargs and isinstance(kwargs[f.name], list):
            kwargs[f.name] = tuple(kwargs[f.name])
    return cls.config_class(**kwargs)


def build_method(run_config: RunConfig, source: str = "config"):  # -> TranslationMethod
    from i2i_cli.diffusion.base_model import attach_base_model
    from i2i_cli.models import registry

    config = build_config(run_config.method, run_config.config, source)
    method = registry.method_class(run_config.method)(config, domains=run_config.domains)
    attach_base_model(method)
    return method


def caption_option(method: Any, caption: str | None) -> dict[str, str]:
    """{"caption": ...} for a method conditioned on a text caption; a caption for any other is refused."""
    if caption is None:
        return {}
    if not method.takes_caption:
        raise ConfigError(f"--caption: {method.name} is not conditioned on text; drop --caption")
    return {"caption": caption}



# --- checkpoints -------------------------------------------------------------------------------------


def checkpoint_dir_name(step: int) -> str:
    return f"step_{step:08d}"


def _safetensors_metadata(run_config: RunConfig, step: int) -> dict[str, str]:
    return {"i2i_version": __version__, "method": run_config.method, "step": str(step),
            "config": json.dumps(run_config.to_json())}


_SAFETENSORS_DTYPES = {
    torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
    torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8",
    torch.bool: "BOOL", torch.float8_e4m3fn: "F8_E4M3", torch.float8_e5m2: "F8_E5M2",
}


def save_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    """Write a safetensors file tensor by tensor, straight from each tensor's memory: the format's 8-byte header
    length, its JSON header (padded to 8 bytes), then the tensors' bytes back to back. safetensors.torch.save
    builds the whole file in memory first (three copies: 1.4 s of fresh pages for pix2pix's 0.2 GB U-Net on this
    CPU, the most of a short run's last checkpoint), and save_file leaves the file 0600; open() follows the umask."""
    ready = {name: tensor.detach().cpu().contiguous() for name, tensor in tensors.items()}
    if sys.byteorder != "little" or any(t.dtype not in _SAFETENSORS_DTYPES for t in ready.values()):
        _save_tensors_in_memory(path, ready, metadata)
        return
    # widest dtypes first, as safetensors orders them: every tensor then starts aligned to its element size
    order = sorted(ready, key=lambda name: (-ready[name].element_size(), name))
    header: dict[str, Any] = {"__metadata__": dict(metadata)} if metadata else {}
    offset = 0
    for name in order:
        tensor = ready[name]
        size = tensor.numel() * tensor.element_size()
        header[name] = {"dtype": _SAFETENSORS_DTYPES[tensor.dtype], "shape": list(tensor.shape),
                        "data_offsets": [offset, offset + size]}
        offset += size
    encoded = json.dumps(header, separators=(",", ":")).encode("utf-8")
    encoded += b" " * (-len(encoded) % 8)
    with open(path, "wb") as handle:
        handle.write(struct.pack("<Q", len(encoded)))
        handle.write(encoded)
        for name in order:
            handle.write(ready[name].reshape(-1).view(torch.uint8).numpy().data)


def _save_tensors_in_memory(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    """safetensors' own writer, for what the streamed one does not cover (a big-endian host, other dtypes)."""
    from safetensors.torch import save

    # safetensors refuses tensors that share storage; copies keep the file self-contained.
    data = save({k: v.clone() for k, v in tensors.items()}, metadata=metadata)
    with open(path, "wb") as handle:
        handle.write(data)


def save_checkpoint(
    run_dir: Path,
    run_config: RunConfig,
    step: int,
    weights: dict[str, torch.Tensor],
    ema: dict[str, torch.Tensor] | None,
    trainer_state: dict[str, Any] | None,
    keep: int = 2,
) -> Path:
    """Write checkpoints/step_N atomically (temporary folder, then rename) and point latest.json at it."""
    root = run_dir / "checkpoints"
    final = root / checkpoint_dir_name(step)
    meta = _safetensors_metadata(run_config, step)
    with atomic_folder(final, replace=True) as tmp:  # disk full, read-only...: one line, no temporary left
        save_tensors(tmp / WEIGHTS_FILE, weights, meta)
        if ema:
            save_tensors(tmp / EMA_FILE, ema, meta)
        if trainer_state is not None:
            # through a Python file: a full disk raises OSError (torch.save on a path raises RuntimeError), and no
            # in-memory copy of the state (0.5 GB for pix2pix; a BytesIO doubled the write: 0.9 against 0.43 s)
            with (tmp / STATE_FILE).open("wb") as state_file, _without_zip_checksums():
                torch.save(trainer_state, state_file)
        (tmp / "meta.json").write_text(json.dumps({"step": step, "i2i_version": __version__}) + "\n")
    atomic_write_json(run_dir / LATEST_FILE, {"step": step, "dir": f"checkpoints/{final.name}"})
    _prune(root, keep, final)
    return final


@contextmanager
def _without_zip_checksums() -> Iterator[None]:
    """torch.save without a CRC-32 per record: torch.load never checks them, and over pix2pix's 0.45 GB of Adam
    moments they cost about 0.1 s of the last step (the file is fsynced and renamed whole either way)."""
    try:
        from torch.utils.serialization import config
    except ImportError:  # torch < 2.7: checksums as before
        yield
        return
    with config.patch({"save.compute_crc32": False}):
        yield


def _prune(root: Path, keep: int, newest: Path) -> None:
    if keep <= 0:
        return
    steps = sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith("step_"))
    for old in steps[:-keep]:
        if old != newest:
            shutil.rmtree(old, ignore_errors=True)


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The newest complete checkpoint folder of a run (latest.json, else the highest step folder)."""
    pointer = run_dir / LATEST_FILE
    if pointer.is_file():
        try:
            candidate = run_dir / json.loads(pointer.read_text())["dir"]
            if (candidate / WEIGHTS_FILE).is_file():
                return candidate
        except (OSError, ValueError, KeyError):
            pass
    root = run_dir / "checkpoints"
    if not root.is_dir():
        return None
    complete = sorted(p for p in root.iterdir() if p.name.startswith("step_") and (p / WEIGHTS_FILE).is_file())
    return complete[-1] if complete else None


def load_tensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: corrupt or unreadable weights ({exc}); use an earlier checkpoint") from exc


def load_trainer_state(ckpt_dir: Path) -> dict[str, Any]:
    path = ckpt_dir / STATE_FILE
    if not path.is_file():
        raise CheckpointError(f"{ckpt_dir}: no trainer state ({STATE_FILE}); this checkpoint cannot be resumed")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001
        raise CheckpointError(f"{path}: unreadable trainer state ({exc}); use an earlier checkpoint") from exc


def load_weights_into(method: Any, tensors: dict[str, torch.Tensor], source: Path) -> None:
    try:
        method.load_saved_state_dict(tensors)
    except (KeyError, RuntimeError) as exc:
        raise CheckpointError(
            f"{source}: weights do not fit this {method.name} configuration ({str(exc).splitlines()[0][:200]})"
        ) from exc


@dataclass
class LoadedModel:
    method: Any = field(repr=False)  # TranslationMethod, in eval mode, EMA weights applied where the run has them
    run_config: RunConfig
    run_dir: Path
    checkpoint: Path
    step: int
    used_ema: bool


WHAT_A_CHECKPOINT_IS = ("a checkpoint is a run folder written by `i2i train` (it holds config.json), a "
                        "checkpoints/step_N folder or weights.safetensors inside one, or an .onnx file from `i2i export`")


def find_run(path: str | os.PathLike[str]) -> tuple[Path, Path]:
    """(run_dir, checkpoint folder) for a run folder, a checkpoint folder or a weights file inside one.

    A Hub-layout folder (or an hf://owner/name reference, fetched into the Hugging Face cache) is its own
    run and checkpoint."""
    given = resolve_hub_path(path)
    if is_hub_folder(given):
        return given, given
    if not given.exists():
        raise CheckpointError(f"{given}: no such run or checkpoint; {WHAT_A_CHECKPOINT_IS}")
    p = given.parent if given.is_file() else given
    if given.is_file() and given.name not in (WEIGHTS_FILE, EMA_FILE, STATE_FILE, CONFIG_FILE, LATEST_FILE, "meta.json"):
        raise CheckpointError(f"{given}: a file, not an i2i checkpoint; {WHAT_A_CHECKPOINT_IS}")
    if is_run_dir(p):
        ckpt = latest_checkpoint(p)
        if ckpt is None:
            raise CheckpointError(f"{p}: the run has no complete checkpoint yet; train longer or resume it")
        return p, ckpt
    if (p / WEIGHTS_FILE).is_file() and is_run_dir(p.parent.parent):
        return p.parent.parent, p
    raise CheckpointError(f"{given}: not an i2i run (no {CONFIG_FILE}); {WHAT_A_CHECKPOINT_IS}")


def load_for_inference(path: str | os.PathLike[str], device: str | torch.device = "cpu", use_ema: bool = True) -> LoadedModel:
    """Rebuild a run's method from config.json and load its newest weights (EMA copies where present)."""
    run_dir, ckpt = find_run(path)
    if is_hub_folder(ckpt):
        return _load_hub_folder(ckpt, device)
    run_config = read_run_config(run_dir)
    method = build_method(run_config, source=str(run_dir / CONFIG_FILE))
    if method.inference_weights():  # fixed networks translation needs (StarGAN v2's FAN), from the registry
        from i2i_cli.engine.fixed_weights import load_pretrained_modules

        load_pretrained_modules(method, names=method.inference_weights())
    load_weights_into(method, load_tensors(ckpt / WEIGHTS_FILE), ckpt / WEIGHTS_FILE)
    used_ema = False
    if use_ema and (ckpt / EMA_FILE).is_file():
        ema = load_tensors(ckpt / EMA_FILE)
        method.load_state_dict(ema, strict=False)
        used_ema = True
    method.to(device).eval()
    step = checkpoint_step(ckpt)
    return LoadedModel(method, run_config, run_dir, ckpt, step, used_ema)


def checkpoint_step(ckpt_dir: Path) -> int:
    meta = ckpt_dir / "meta.json"
    try:
        return int(json.loads(meta.read_text()).get("step", 0)) if meta.is_file() else 0
    except (OSError, ValueError):
        return 0


def run_progress(run_dir: Path) -> tuple[int, int | None]:
    """(step of the newest complete checkpoint, planned total steps or None when the run records none, as
    imported and pretrained runs do)."""
    latest = latest_checkpoint(run_dir)
    step = checkpoint_step(latest) if latest is not None else 0
    try:
        planned = read_run_config(run_dir).train.get("total_steps")
    except CheckpointError:
        planned = None
    return step, int(planned) if planned else None


def is_finished(run_dir: Path) -> bool:
    step, planned = run_progress(run_dir)
    return planned is None or step >= planned


def newest_run(root: Path = Path("runs"), finished_only: bool = False) -> Path | None:
    """The most recently updated run folder under `root` (for commands given no --checkpoint); with
    `finished_only`, the newest whose last checkpoint reached its planned steps."""
    if not root.is_dir():
        return None
    runs = [p for p in root.iterdir() if p.is_dir() and is_run_dir(p) and latest_checkpoint(p) is not None
            and (not finished_only or is_finished(p))]
    if not runs:
        return None
    return max(runs, key=lambda p: (p / LATEST_FILE).stat().st_mtime if (p / LATEST_FILE).exists() else 0)


# --- Hub-layout folders and hf:// references ---------------------------------------------------------


def is_hub_folder(path: Path) -> bool:
    """config.json (an i2i run config) next to model.safetensors (the inference weights), as `i2i hub push` writes."""
    return path.is_dir() and (path / CONFIG_FILE).is_file() and (path / HUB_WEIGHTS_FILE).is_file()


def parse_hub_reference(value: str | os.PathLike[str]) -> tuple[str, str | None] | None:
    """(repo id, revision) of hf://owner/name[@revision]; None for anything else.

    A typer Path option turns hf://x into hf:/x, so both spellings are accepted."""
    text = os.fspath(value)
    for prefix in (HUB_PREFIX, "hf:/"):
        if text.startswith(prefix):
            reference = text[len(prefix):].strip("/")
            repo, _, revision = reference.partition("@")
            if repo.count("/") != 1 or not all(repo.split("/")):
                raise CheckpointError(f"{text}: a Hub checkpoint is hf://OWNER/NAME or hf://OWNER/NAME@REVISION")
            return repo, revision or None
    return None


def resolve_hub_path(value: str | os.PathLike[str]) -> Path:
    """A local path unchanged; hf://owner/name[@rev] -> its snapshot folder in the Hugging Face cache.

    huggingface_hub resolves it (its cache, HF_HUB_OFFLINE, HF_ENDPOINT, HF_TOKEN or the saved login)."""
    reference = parse_hub_reference(value)
    if reference is None:
        return resolve_run_reference(value)
    repo, revision = reference
    from i2i_cli.extras import require_extra

    require_extra("huggingface_hub", "hub", "hf:// checkpoints")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    name = f"{HUB_PREFIX}{repo}" + (f"@{revision}" if revision else "")
    try:
        folder = Path(snapshot_download(repo, revision=revision, repo_type="model"))
    except RevisionNotFoundError:
        raise CheckpointError(f"{name}: the repo has no revision {revision!r}; check the branch, tag or commit") from None
    except (RepositoryNotFoundError, GatedRepoError):
        raise CheckpointError(f"{name}: no such model repo, or it is private or gated and no token with access "
                              "was sent; check the name, then log in with `hf auth login` or set HF_TOKEN") from None
    except LocalEntryNotFoundError:
        raise CheckpointError(f"{name}: not in the Hugging Face cache and the Hub cannot be reached (offline: "
                              "HF_HUB_OFFLINE=1 or no network); run once online to cache it") from None
    except HfHubHTTPError as exc:
        raise CheckpointError(f"{name}: the Hub refused the download ({str(exc).splitlines()[0][:200]})") from None
    if not is_hub_folder(folder):
        raise CheckpointError(f"{name}: not an i2i model repo (no {CONFIG_FILE} + {HUB_WEIGHTS_FILE}); push one "
                              "with `i2i hub push RUN OWNER/NAME`")
    return folder


def _load_hub_folder(folder: Path, device: str | torch.device) -> LoadedModel:
    """A Hub-layout folder: the inference weights only (EMA already applied), no trainer state."""
    run_config = read_run_config(folder)
    method = build_method(run_config, source=str(folder / CONFIG_FILE))
    tensors = load_tensors(folder / HUB_WEIGHTS_FILE)
    missing, unexpected = method.load_state_dict(tensors, strict=False)
    needed = set(inference_state_keys(method))
    if unexpected or needed & set(missing):
        raise CheckpointError(f"{folder / HUB_WEIGHTS_FILE}: weights do not fit this {method.name} configuration "
                              f"(missing {sorted(needed & set(missing))[:5]}, unexpected {unexpected[:5]})")
    method.to(device).eval()
    extra = json.loads((folder / CONFIG_FILE).read_text()).get("i2i_checkpoint", {})
    return LoadedModel(method, run_config, folder, folder, int(extra.get("step", 0)), bool(extra.get("used_ema", False)))


def is_training_only(name: str) -> bool:
    """Discriminators (D, D_A, D_B) only train: the inference weights leave them out."""
    return name == "D" or name.startswith("D_")


def inference_state_keys(method: Any) -> list[str]:
    """The saved weights translation needs: every network except the discriminators and frozen modules."""
    frozen = tuple(name + "." for name in method.frozen_modules())
    return [k for k in method.saved_state_dict() if not k.startswith(frozen) and not is_training_only(k.split(".")[0])]


# --- RUN@best, RUN@last, RUN@step_N ------------------------------------------------------------------


def resolve_run_reference(value: str | os.PathLike[str]) -> Path:
    """RUN@best -> RUN/checkpoints/best, RUN@last -> RUN, RUN@step_N -> RUN/checkpoints/step_N; anything else,
    including an existing path that happens to hold an '@', unchanged."""
    text = os.fspath(value)
    run, sep, tag = text.rpartition("@")
    if not sep or not run or Path(text).exists() or "/" in tag or not is_run_dir(Path(run)):
        return Path(text)
    run_dir = Path(run)
    if tag == "last":
        return run_dir
    if tag == BEST_DIR:
        best = run_dir / "checkpoints" / BEST_DIR
        if not (best / WEIGHTS_FILE).is_file():
            raise CheckpointError(f"{text}: the run has no best checkpoint; train it with --eval-every N --keep-best "
                                  "METRIC (or use RUN@last)")
        return best
    if tag.startswith("step_") and tag[len("step_"):].isdigit():
        folder = run_dir / "checkpoints" / checkpoint_dir_name(int(tag[len("step_"):]))
        if not (folder / WEIGHTS_FILE).is_file():
            kept = sorted(p.name for p in (run_dir / "checkpoints").glob("step_*") if (p / WEIGHTS_FILE).is_file())
            raise CheckpointError(f"{text}: no such checkpoint (kept: {', '.join(kept) or 'none'}); train with "
                                  "--keep 0 to keep every checkpoint")
        return folder
    raise CheckpointError(f"{text}: unknown checkpoint tag '@{tag}'; use RUN@best, RUN@last or RUN@step_N")


def save_best(run_dir: Path, checkpoint: Path, record: dict[str, Any]) -> Path:
    """Copy `checkpoint` to RUN/checkpoints/best (whole or absent, as every checkpoint) and write RUN/best.json."""
    final = run_dir / "checkpoints" / BEST_DIR
    with atomic_folder(final, replace=True) as tmp:
        for name in (WEIGHTS_FILE, EMA_FILE, "meta.json"):  # the trainer state is not needed to use the weights
            if (checkpoint / name).is_file():
                shutil.copy2(checkpoint / name, tmp / name)
    atomic_write_json(run_dir / BEST_FILE, record)
    return final


def read_best(run_dir: Path) -> dict[str, Any] | None:
    """RUN/best.json, or None when the run kept no best checkpoint."""
    path = run_dir / BEST_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
