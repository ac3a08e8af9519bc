"""Evaluation during training: the trainer's evaluator (engine.trainer.RunEvaluator), built by the command.

Each evaluation scores a checkpoint the trainer has just saved exactly as `i2i eval --checkpoint` would (the
method's `evaluation`: translation, multidomain or segmentation; EMA weights where present), in
RUN/eval/step_N. The real set's Inception features are computed once per run and kept (`feature_cache`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from i2i_cli.errors import ConfigError
from i2i_cli.evaluation.evaluate import EvalOptions, evaluate_run

# value key -> which way it improves; keys not listed follow the prefix rules in `better`
_HIGHER = ("accuracy", "iou")


def better(key: str) -> str:
    """"min" or "max" for a value key: FID / KID / paired LPIPS fall, accuracies, IoU and StarGAN v2's LPIPS
    diversity (lpips_latent_..., lpips_reference_...) rise."""
    if not key or key.endswith("_std"):
        raise ConfigError(f"--keep-best {key or '(empty)'}: choose a value to rank runs by, e.g. fid, kid_mean, "
                          "fid_latent_mean, real-free FCN keys pixel_accuracy / mean_iou")
    if any(part in key for part in _HIGHER) or (key.startswith("lpips_") and key != "lpips"):
        return "max"
    if key.startswith(("fid", "kid", "lpips")):
        return "min"
    raise ConfigError(f"--keep-best {key}: not a value i2i's evaluations report; choose fid, kid_mean, lpips, "
                      "fid_latent_mean, pixel_accuracy, class_accuracy or mean_iou")


@dataclass
class TrainingEvaluator:
    """Scores a run's checkpoints on `data` with `options`; rank 0 of the trainer calls `evaluate`."""

    data: Path
    options: EvalOptions
    multidomain: Any = None  # a MultiDomainOptions for StarGAN v2 runs (None: its defaults)
    feature_cache: dict[str, Any] = field(default_factory=dict)

    def evaluate(self, checkpoint: Path, step: int) -> dict[str, float]:
        run_dir = checkpoint.parent.parent
        options = replace(self.options, feature_cache=self.feature_cache)
        result, _ = evaluate_run(checkpoint, self.data, options, out=run_dir / "eval" / f"step_{step:08d}",
                                 multidomain=self.multidomain)
        return {k: float(v) for k, v in result.values.items() if isinstance(v, (int, float))}

    def better(self, key: str) -> str:
        return better(key)

    def check(self) -> None:
        """The FID network's weights are at hand: refused before training rather than at its first evaluation."""
        from i2i_cli.evaluation.fid_kid import check_inception_weights

        check_inception_weights(self.options.mode, self.options.weights_dir)
