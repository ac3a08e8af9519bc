"""--eval-every / --keep-best: evaluations logged, the best checkpoint kept, RUN@best / @step_N / @last resolved,
the history and the best kept across an exact resume, the real set's Inception features computed once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from i2i_cli.engine.checkpoint import (
    find_run,
    latest_checkpoint,
    load_tensors,
    read_best,
    resolve_run_reference,
)
from i2i_cli.engine.trainer import TrainOptions, train
from i2i_cli.errors import CheckpointError, ConfigError
from i2i_cli.evaluation import fid_kid
from i2i_cli.evaluation.during_training import better
from i2i_cli.main import app
from tests.conftest import tiny_config
from tests.test_evaluation import _stand_in_dir

runner = CliRunner()


@pytest.fixture(scope="module")
def inception64(tmp_path_factory):
    """A weights folder with the stand-in 64-d Inception and a random AlexNet (LPIPS's backbone, paired data)."""
    import torchvision

    folder = _stand_in_dir(tmp_path_factory, 64)
    torch.manual_seed(0)
    features = torchvision.models.alexnet(weights=None).features.state_dict()
    torch.save({f"features.{k}": v for k, v in features.items()}, folder / "alexnet-owt-7be5be79.pth")
    return folder


class _Scripted:
    """An evaluator with fixed values per step (the trainer's side of the contract, no network)."""

    def __init__(self, values: dict[int, float]) -> None:
        self.values = values
        self.calls: list[int] = []

    def evaluate(self, checkpoint: Path, step: int) -> dict[str, float]:
        assert (checkpoint / "weights.safetensors").is_file() and checkpoint.name == f"step_{step:08d}"
        self.calls.append(step)
        return {"fid": self.values[step]}

    def better(self, key: str) -> str:
        return better(key)


def _eval_rows(run: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if "eval" in r]


def test_best_kept_across_resume_and_checkpoint_tags(datasets, tmp_path):
    config = tiny_config("pix2pix")
    common = dict(data=datasets["aligned"], device="cpu", save_every=100, keep=0, eval_every="2", keep_best="fid",
                  log_to=())
    scripted = _Scripted({2: 3.0, 4: 5.0})

    def stop_after_first_evaluation(event) -> None:
        if event.kind == "eval" and event.step == 2:
            raise KeyboardInterrupt

    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        train("pix2pix", config, TrainOptions(out=run, steps=4, **common), stop_after_first_evaluation, scripted)
    result = train("pix2pix", config, TrainOptions(out=run, steps=4, resume=True, **common), evaluator=scripted)
    assert scripted.calls == [2, 4]
    assert [r["step"] for r in _eval_rows(run)] == [2, 4]  # the history survives the resume
    assert result.best["step"] == 2 and read_best(run)["value"] == 3.0  # and so does the best
    best = resolve_run_reference(f"{run}@best")
    assert find_run(best) == (run, best)
    a, b = load_tensors(best / "weights.safetensors"), load_tensors(run / "checkpoints/step_00000002/weights.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert "Evaluation during training" in (run / "index.html").read_text()
    assert resolve_run_reference(f"{run}@last") == run and latest_checkpoint(run).name == "step_00000004"
    assert find_run(f"{run}@step_2")[1].name == "step_00000002"
    with pytest.raises(CheckpointError, match="kept: step_00000002, step_00000004"):
        resolve_run_reference(f"{run}@step_3")
    with pytest.raises(CheckpointError, match="unknown checkpoint tag"):
        resolve_run_reference(f"{run}@newest")
    (run / "best.json").unlink()
    import shutil

    shutil.rmtree(best)
    with pytest.raises(CheckpointError, match="no best checkpoint"):
        resolve_run_reference(f"{run}@best")


def test_keep_best_needs_evaluation_and_a_ranked_key(datasets, tmp_path):
    config = tiny_config("pix2pix")
    with pytest.raises(ConfigError, match="add --eval-every"):
        train("pix2pix", config, TrainOptions(data=datasets["aligned"], out=tmp_path / "a", steps=2, device="cpu",
                                              keep_best="fid"), evaluator=_Scripted({}))
    with pytest.raises(ConfigError, match="--keep-best kid_std"):
        better("kid_std")
    assert better("mean_iou") == "max" and better("lpips_latent_mean") == "max" and better("lpips") == "min"


@pytest.mark.slow  # about 45 s on a loaded 2-core machine; test_reproduce's end-to-end test covers the same path
def test_cli_eval_every_with_real_metrics_and_translate_best(datasets, tmp_path, inception64, monkeypatch):
    monkeypatch.setenv("I2I_WEIGHTS_DIR", str(inception64))
    calls = []
    real_features = fid_kid.folder_features

    def counting(folder, *args, **kwargs):
        calls.append(Path(folder).name)
        return real_features(folder, *args, **kwargs)

    monkeypatch.setattr(fid_kid, "folder_features", counting)
    run = tmp_path / "run"
    result = runner.invoke(app, ["train", "-m", "pix2pix", "-d", str(datasets["aligned"]), "-o", str(run), "--steps",
                                 "2", "--device", "cpu", "--size", "32", "--set", "ngf=8", "--set", "ndf=8",
                                 "--eval-every", "1", "--keep-best", "fid", "--log-to", "none",
                                 "--json", str(tmp_path / "r.json")])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "r.json").read_text())
    assert [e["step"] for e in summary["evaluations"]] == [1, 2]
    assert {"fid", "kid_mean", "lpips"} <= set(summary["evaluations"][0]["values"])
    assert summary["best"]["key"] == "fid"
    assert calls.count("real") == 1 and calls.count("fake") == 2  # the real set's features once per run
    out = tmp_path / "out"
    translated = runner.invoke(app, ["translate", "--checkpoint", f"{run}@best", str(datasets["aligned"] / "test"),
                                     str(out), "--device", "cpu"])
    assert translated.exit_code == 0, translated.output


def test_missing_fid_weights_are_refused_before_training(datasets, tmp_path):
    run = tmp_path / "run"
    result = runner.invoke(app, ["train", "-m", "pix2pix", "-d", str(datasets["aligned"]), "-o", str(run), "--steps",
                                 "2", "--device", "cpu", "--eval-every", "1", "--weights-dir", str(tmp_path)])
    assert result.exit_code == 2 and "inception" in result.output.lower(), result.output
    assert not run.exists()


def test_evaluation_leaves_training_unchanged(datasets, tmp_path):
    """An evaluation that draws random numbers (latent codes, KID subsets) does not shift training's draws."""

    class Drawing(_Scripted):
        def evaluate(self, checkpoint: Path, step: int) -> dict[str, float]:
            torch.rand(1000)
            import numpy as np

            np.random.rand(10)
            return super().evaluate(checkpoint, step)

    config = tiny_config("pix2pix")  # dropout on: the weights depend on torch's draws
    common = dict(data=datasets["aligned"], device="cpu", steps=2, log_to=())
    train("pix2pix", config, TrainOptions(out=tmp_path / "a", eval_every="1", **common), evaluator=Drawing({1: 1, 2: 2}))
    train("pix2pix", config, TrainOptions(out=tmp_path / "b", **common))
    a = load_tensors(latest_checkpoint(tmp_path / "a") / "weights.safetensors")
    b = load_tensors(latest_checkpoint(tmp_path / "b") / "weights.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
