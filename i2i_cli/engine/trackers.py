"""Experiment trackers behind one small interface: TensorBoard (the default), Weights & Biases, MLflow.

The trainer logs to a `Trackers` as it logged to TensorBoard's SummaryWriter (`add_scalar`, `close`), plus
`add_sample` for each sample grid; each tracker also records the resolved config once. wandb and mlflow are
configured by their own environment (WANDB_MODE=offline, WANDB_PROJECT, MLFLOW_TRACKING_URI, ...); without
one, MLflow writes to a local store in the run folder (RUN/mlflow.db, artifacts in RUN/mlartifacts) and wandb
to RUN/wandb.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from i2i_cli.errors import ConfigError

TRACKERS = ("tensorboard", "wandb", "mlflow")


def parse_log_to(value: str | list[str] | tuple[str, ...]) -> list[str]:
    """'tensorboard,wandb' -> ['tensorboard', 'wandb']; unknown names refused in one line."""
    names = [n.strip().lower() for n in (value.split(",") if isinstance(value, str) else value) if n.strip()]
    unknown = [n for n in names if n not in TRACKERS and n != "none"]
    if unknown:
        raise ConfigError(f"--log-to {','.join(unknown)}: choose from {', '.join(TRACKERS)} (comma-separated), or none")
    return [n for n in dict.fromkeys(names) if n != "none"]


def _flat(obj: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested config -> {"config.lr": 0.0002, ...}: the flat parameters MLflow takes."""
    flat: dict[str, Any] = {}
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flat(value, name + "."))
        else:
            flat[name] = value if isinstance(value, (int, float, str, bool)) or value is None else str(value)
    return flat


class TensorBoardTracker:
    def __init__(self, out: Path, start: int, config: dict[str, Any]) -> None:
        import json

        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(out / "tb"), purge_step=start if start else None)
        if not start:
            self.writer.add_text("config", "```\n" + json.dumps(config, indent=2, default=str) + "\n```", 0)

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        self.writer.add_scalar(tag, value, step)

    def add_sample(self, path: Path, step: int) -> None:
        import numpy as np
        from PIL import Image

        self.writer.add_image("samples", np.asarray(Image.open(path).convert("RGB")), step, dataformats="HWC")

    def close(self) -> None:
        self.writer.close()


class WandbTracker:
    """One wandb run per i2i run (its id is the run folder's name, so --resume continues it)."""

    def __init__(self, out: Path, start: int, config: dict[str, Any]) -> None:
        import wandb

        self.wandb = wandb
        run_id = "".join(c if c.isalnum() or c in "-_" else "-" for c in out.resolve().name)
        self.run = wandb.init(project=os.environ.get("WANDB_PROJECT", "i2i"), name=out.name, id=run_id,
                              dir=str(out), config=config, resume="allow" if start else None, reinit=True)

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        self.run.log({tag: value}, step=step)

    def add_sample(self, path: Path, step: int) -> None:
        self.run.log({"samples": self.wandb.Image(str(path))}, step=step)

    def close(self) -> None:
        self.run.finish()


class MlflowTracker:
    """An MLflow run named after the run folder; parameters are the flattened resolved config."""

    def __init__(self, out: Path, start: int, config: dict[str, Any]) -> None:
        import mlflow

        self.mlflow = mlflow
        name = os.environ.get("MLFLOW_EXPERIMENT_NAME", "i2i")
        if not os.environ.get("MLFLOW_TRACKING_URI"):
            # a local store in the run folder; SQLite, since MLflow 3 refuses its plain-file store by default
            mlflow.set_tracking_uri(f"sqlite:///{(out / 'mlflow.db').resolve()}")
            if mlflow.get_experiment_by_name(name) is None:
                mlflow.create_experiment(name, artifact_location=(out / "mlartifacts").resolve().as_uri())
        mlflow.set_experiment(name)
        self.run = mlflow.start_run(run_name=out.name)
        params = _flat(config)
        for offset in range(0, len(params), 100):  # MLflow takes at most 100 parameters per call
            mlflow.log_params(dict(list(params.items())[offset : offset + 100]))
        mlflow.log_dict(config, "config.json")

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        self.mlflow.log_metric(tag.replace("/", "."), value, step=step)  # MLflow metric names take no "/" in some stores

    def add_sample(self, path: Path, step: int) -> None:
        self.mlflow.log_artifact(str(path), artifact_path="samples")

    def close(self) -> None:
        self.mlflow.end_run()


_CLASSES = {"tensorboard": TensorBoardTracker, "wandb": WandbTracker, "mlflow": MlflowTracker}
_PACKAGES = {"tensorboard": ("tensorboard", ""), "wandb": ("wandb", "trackers"), "mlflow": ("mlflow", "trackers")}


class Trackers:
    """Every chosen tracker, as one SummaryWriter-like object."""

    def __init__(self, trackers: list[Any]) -> None:
        self.trackers = trackers

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        for tracker in self.trackers:
            tracker.add_scalar(tag, value, step)

    def add_sample(self, path: Path, step: int) -> None:
        for tracker in self.trackers:
            tracker.add_sample(path, step)

    def close(self) -> None:
        for tracker in self.trackers:
            tracker.close()


def check_trackers(names: list[str]) -> None:
    """Before training starts: each chosen tracker's package is installed (else one line naming the extra)."""
    from i2i_cli.extras import require_extra

    for name in names:
        module, extra = _PACKAGES[name]
        if extra:
            require_extra(module, extra, f"--log-to {name}")


def open_trackers(names: list[str], out: Path, start: int, config: dict[str, Any]) -> Trackers:
    check_trackers(names)
    return Trackers([_CLASSES[name](out, start, config) for name in names])
