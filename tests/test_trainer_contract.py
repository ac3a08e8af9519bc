"""What the trainer reads from a method's config (total_iterations, ema_decay, resumable), the run's plan, and
the resume diff in engine/checkpoint."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import ClassVar

import pytest
import torch
from typer.testing import CliRunner

from i2i_cli.engine.checkpoint import (
    RunConfig,
    config_differences,
    latest_checkpoint,
    load_tensors,
    refuse_changed_config,
    write_run_config,
)
from i2i_cli.engine.trainer import TrainOptions, plan_run, train
from i2i_cli.errors import ConfigError
from i2i_cli.main import app
from i2i_cli.models import registry
from i2i_cli.models.base import MethodConfig
from i2i_cli.models.methods.pix2pix import Pix2PixConfig
from i2i_cli.models.methods.starganv2 import StarGANv2Config
from tests.conftest import tiny_config

HOOKS = ("total_iterations", "ema_decay", "resumable")


def test_configs_default_to_epochs_and_the_usual_average_and_stargan_v2_maps_its_own_options():
    assert (MethodConfig().total_iterations(), MethodConfig().ema_decay(), MethodConfig.resumable) == (0, 0.999, ())
    stargan = StarGANv2Config(total_iters=7, ema_beta=0.5)
    assert (stargan.total_iterations(), stargan.ema_decay()) == (7, 0.5)
    assert (StarGANv2Config().total_iterations(), StarGANv2Config().ema_decay()) == (100_000, 0.999)


def test_the_hooks_are_no_options_of_any_method():
    for name in registry.list_methods():
        config_class = registry.method_class(name).config_class
        assert not {f.name for f in config_class.options()} & set(HOOKS), name
        assert not set(config_class().to_dict()) & set(HOOKS), name
    shown = CliRunner().invoke(app, ["methods", "show", "pix2pix"])
    assert shown.exit_code == 0, shown.output
    assert not any(word in shown.output for word in ("total_iters", "ema_beta", *HOOKS))


def test_the_plan_counts_epochs_or_the_methods_iterations(tmp_path):
    options = TrainOptions(data=tmp_path, out=tmp_path / "run")
    plan = plan_run(Pix2PixConfig(batch_size=2, epochs=200, decay_epochs=100), options, n_items=10)
    assert (plan.total, plan.steps_per_epoch, plan.decay, plan.sample_every, plan.save_every) == (1000, 5, 500, 100,
                                                                                                   200)
    stargan = StarGANv2Config(batch_size=2, total_iters=7)
    assert (plan_run(stargan, options, 10).total, plan_run(stargan, options, 10).decay) == (7, 0)
    assert plan_run(stargan, dataclasses.replace(options, steps=3), 10).total == 3
    assert plan_run(stargan, dataclasses.replace(options, epochs=2.0), 10).total == 10
    assert plan_run(dataclasses.replace(stargan, total_iters=0), options, 10).total == 1
    every = plan_run(stargan, dataclasses.replace(options, sample_every=2, save_every=3), 10)
    assert (every.sample_every, every.save_every) == (2, 3)


def _run(config: dict, train_options: dict) -> RunConfig:
    return RunConfig("pix2pix", config, ["A", "B"], {}, train_options)


def test_the_resume_diff_skips_only_what_the_options_declare_resumable():
    saved = _run({"lambda_L1": 100.0, "betas": [0.5, 0.999]}, {"steps": 4, "seed": 0, "device": "cpu"})
    new = _run({"lambda_L1": 5.0, "betas": (0.5, 0.999)}, {"steps": 6, "seed": 1, "device": "cuda"})
    assert config_differences(saved, new, (), TrainOptions.resumable) == ["lambda_L1 (100.0 -> 5.0)", "seed (0 -> 1)"]
    assert config_differences(saved, new, ("lambda_L1",), TrainOptions.resumable) == ["seed (0 -> 1)"]
    assert config_differences(saved, new) == ["lambda_L1 (100.0 -> 5.0)", "device (cpu -> cuda)", "seed (0 -> 1)",
                                              "steps (4 -> 6)"]
    assert "seed" not in TrainOptions.resumable and "total_steps" in TrainOptions.resumable
    assert "resumable" not in {f.name for f in dataclasses.fields(TrainOptions)}


def test_refusing_a_changed_config_names_the_run_and_every_difference(tmp_path):
    write_run_config(tmp_path, _run({"lambda_L1": 100.0}, {"seed": 0}))
    refuse_changed_config(tmp_path, _run({"lambda_L1": 100.0}, {"seed": 0}))
    with pytest.raises(ConfigError) as caught:
        refuse_changed_config(tmp_path, _run({"lambda_L1": 5.0}, {"seed": 0}))
    assert str(caught.value) == (f"{tmp_path}: cannot resume, the config differs: lambda_L1 (100.0 -> 5.0) "
                                 "(use the run's own options, or --overwrite to start again)")


@dataclasses.dataclass
class _LambdaMayChange(Pix2PixConfig):
    resumable: ClassVar[tuple[str, ...]] = ("lambda_L1",)


def test_the_trainer_lets_a_resume_change_what_the_method_config_declares(datasets, tmp_path):
    common = dict(data=datasets["aligned"], device="cpu", save_every=1, sample_every=100)
    fixed = tiny_config("pix2pix", ngf=8, ndf=8)
    train("pix2pix", fixed, TrainOptions(out=tmp_path / "fixed", steps=1, **common))
    with pytest.raises(ConfigError, match="lambda_L1"):
        train("pix2pix", dataclasses.replace(fixed, lambda_L1=5.0),
              TrainOptions(out=tmp_path / "fixed", steps=2, resume=True, **common))
    free = _LambdaMayChange(**dataclasses.asdict(fixed))
    train("pix2pix", free, TrainOptions(out=tmp_path / "free", steps=1, **common))
    resumed = train("pix2pix", dataclasses.replace(free, lambda_L1=5.0),
                    TrainOptions(out=tmp_path / "free", steps=2, resume=True, **common))
    assert resumed.steps == 2


@dataclasses.dataclass
class _NoAverage(StarGANv2Config):
    def ema_decay(self) -> float:
        return 0.0  # the average is the live network after every step


def test_the_trainer_averages_with_the_configs_ema_decay(datasets, tmp_path):
    common = dict(data=datasets["domains"], device="cpu", steps=1, save_every=1, sample_every=100)
    for name, config in (("none", _NoAverage(**dataclasses.asdict(tiny_config("starganv2")))),
                         ("default", tiny_config("starganv2"))):
        train("starganv2", config, TrainOptions(out=tmp_path / name, **common))
    for name, equal in (("none", True), ("default", False)):
        last = latest_checkpoint(Path(tmp_path / name))
        live, ema = load_tensors(last / "weights.safetensors"), load_tensors(last / "ema.safetensors")
        floats = [k for k in ema if ema[k].is_floating_point()]
        assert all(torch.equal(ema[k], live[k]) for k in floats) is equal, name
