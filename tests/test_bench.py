"""`i2i bench`: every asked-for setting is measured and written; impossible settings are refused up front."""

from __future__ import annotations

import json
import math

import pytest
import torch
from typer.testing import CliRunner

from i2i_cli.main import app


def test_bench_translate_measures_every_batch_size_and_precision(tmp_path):
    out = tmp_path / "b.json"
    result = CliRunner().invoke(app, ["bench", "translate", "--model", "pix2pix", "--size", "32", "--batch-size",
                                      "1,2", "--precision", "fp32,bf16", "--images", "2", "--repeats", "1",
                                      "--rounds", "2", "--device", "cpu", "--json", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    settings = [(r["batch_size"], r["precision"]) for r in report["rows"]]
    assert settings == [(1, "fp32"), (2, "fp32"), (1, "bf16"), (2, "bf16")]
    for row in report["rows"]:
        assert row["torch_model_only"] > 0 and row["end_to_end"] > 0
        assert (row["onnx_model_only"] is None) == (row["precision"] == "bf16")
        low, high = row["torch_model_only_range"]  # the median of the timed calls, with their min and max
        assert low <= row["torch_model_only"] <= high
        if row["onnx_model_only"] is not None:
            low, high = row["onnx_model_only_range"]
            assert low <= row["onnx_model_only"] <= high
        low, high = row["end_to_end_range"]  # medians over the interleaved rounds, with their spread
        assert low <= row["end_to_end"] <= high
        low, high = row["ratio_range"]  # end to end over model only, measured back to back in each round
        assert low <= row["ratio"] <= high and row["ratio"] > 0
    assert (report["rounds"], report["repeats"]) == (2, 1)
    assert report["network"] == "UnetGenerator" and report["onnx_provider"].endswith("ExecutionProvider")


def test_bench_translate_tiles_large_images(tmp_path):
    out = tmp_path / "b.json"
    result = CliRunner().invoke(app, ["bench", "translate", "--model", "pix2pix", "--size", "96", "--tile", "64",
                                      "--images", "1", "--repeats", "1", "--rounds", "1", "--device", "cpu",
                                      "--json", str(out)])
    assert result.exit_code == 0, result.output
    (row,) = json.loads(out.read_text())["rows"]
    assert row["end_to_end"] > 0 and row["onnx_model_only"] is None and "tiles of 64" in result.output


def test_bench_translate_refuses_fp16_on_cpu_and_bad_batch_sizes():
    runner = CliRunner()
    fp16 = runner.invoke(app, ["bench", "translate", "--precision", "fp16", "--device", "cpu"])
    assert fp16.exit_code == 2 and "fp16 needs a CUDA device" in fp16.output
    bad = runner.invoke(app, ["bench", "translate", "--batch-size", "1,eight", "--device", "cpu"])
    assert bad.exit_code == 2 and "--batch-size 1,eight" in bad.output


def test_bench_train_compares_baseline_and_fast_settings_on_the_same_losses(tmp_path):
    out = tmp_path / "t.json"
    result = CliRunner().invoke(app, ["bench", "--model", "pix2pix", "--size", "32", "--steps", "3", "--warmup", "1",
                                      "--device", "cpu", "--set", "ngf=8", "--set", "ndf=8", "--json", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    base, fast = report["rows"]
    assert base["setting"].startswith("baseline") and fast["setting"].startswith("i2i fast")
    for row in (base, fast):
        assert row["train_images_per_s"] > 0 and row["peak_memory_mb"] > 0 and len(row["losses"]) == 4
        assert row["warmup_peak_memory_mb"] is None  # a CUDA-only figure
        # the figure is the median step; set-up and the rest are timed apart and not in it
        steps = sorted(row["step_seconds"])
        assert len(steps) == 3 and math.isclose(row["train_images_per_s"], 1 / steps[1])
        low, high = row["train_images_per_s_range"]
        assert math.isclose(low, 1 / steps[-1]) and math.isclose(high, 1 / steps[0])
        assert row["setup_seconds"] > 0 and row["finish_seconds"] >= 0 and row["translate_seconds"] > 0
        t_low, t_high = row["translate_images_per_s_range"]
        assert t_low <= row["translate_images_per_s"] <= t_high
    assert set(report["loss_agreement"]) == set(base["losses"][0])
    assert "ratio fast / baseline" in result.output
    assert "whole benchmark" in result.output


def test_step_timer_stops_training_before_the_final_sample_and_checkpoint(tmp_path):
    from i2i_cli.benchmarks.train import _EnoughSteps, _StepTimer
    from i2i_cli.engine.trainer import TrainEvent

    timer = _StepTimer(torch.device("cpu"), warmup=1, stop_after=3)
    timer(TrainEvent("step", 1, 4))
    timer(TrainEvent("step", 2, 4))
    with pytest.raises(_EnoughSteps):
        timer(TrainEvent("step", 3, 4))
    assert len(timer.times) == 3
