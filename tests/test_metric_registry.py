"""Adding a folder metric is one class in one file plus one registry line (i2i_cli/evaluation/metrics.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from i2i_cli.data.images import list_images, load_image, save_image
from i2i_cli.evaluation import metrics
from i2i_cli.evaluation.metrics import FolderMetric, MetricContext
from i2i_cli.main import app


class MeanAbsoluteError(FolderMetric):
    """A throw-away metric: mean absolute pixel difference between namesakes, in levels."""

    name = "mae"
    keys = ("mae",)

    def compute(self, ctx: MetricContext) -> None:
        diffs = [np.abs(load_image(f).astype(np.float64) - load_image(ctx.real / f.name).astype(np.float64)).mean()
                 for f in list_images(ctx.fake)]
        ctx.values["mae"] = float(np.mean(diffs))
        ctx.protocol.update({"mae": {"pairs": len(diffs), "unit": "8-bit levels"}})


def _folders(tmp_path: Path) -> tuple[Path, Path, float]:
    rng = np.random.default_rng(0)
    expected = []
    for i in range(3):
        real = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        fake = np.clip(real.astype(int) + rng.integers(-20, 21, real.shape), 0, 255).astype(np.uint8)
        save_image(real, tmp_path / "real" / f"{i}.png")
        save_image(fake, tmp_path / "fake" / f"{i}.png")
        expected.append(np.abs(real.astype(float) - fake.astype(float)).mean())
    return tmp_path / "real", tmp_path / "fake", float(np.mean(expected))


def test_a_metric_in_one_class_and_one_registry_line_runs_through_i2i_eval(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(metrics._METRICS, "mae", f"{__name__}:MeanAbsoluteError")  # the one registry line
    real, fake, expected = _folders(tmp_path)
    result = CliRunner().invoke(app, ["eval", "--real", str(real), "--fake", str(fake), "--metrics", "mae",
                                      "--device", "cpu", "--json", "-"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout[result.stdout.index("{"):])
    assert payload["mae"] == pytest.approx(expected)
    assert payload["protocol"]["mae"] == {"pairs": 3, "unit": "8-bit levels"}
    assert payload["fid"] is None and payload["lpips"] is None  # the other metrics' keys stay, not computed


def test_an_unknown_metric_names_every_registered_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(metrics._METRICS, "mae", f"{__name__}:MeanAbsoluteError")
    real, fake, _ = _folders(tmp_path)
    result = CliRunner().invoke(app, ["eval", "--real", str(real), "--fake", str(fake), "--metrics", "fdi"])
    assert result.exit_code == 2
    assert "unknown fdi; choose from fid, kid, lpips, dino_struct, mae" in result.output


def test_every_registered_metric_loads_and_declares_its_keys() -> None:
    keys = []
    for name in metrics.metric_names():
        cls = metrics.metric_class(name)
        assert issubclass(cls, FolderMetric) and cls.name == name and cls.keys
        keys += cls.keys
    assert len(keys) == len(set(keys))  # two metrics writing one key would overwrite each other
