"""Faults during training lose nothing: kill -9, NaN losses, a full disk, checkpoints from elsewhere."""

from __future__ import annotations

import errno
import json
import math
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from i2i_cli.engine import checkpoint as ckpt
from i2i_cli.engine.trainer import TrainOptions, train
from i2i_cli.errors import CheckpointError, I2IError, TrainingDiverged
from models.methods.pix2pix import Pix2Pix
from tests.conftest import tiny_config


def _steps_logged(run) -> list[int]:
    return [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]


def test_kill_9_during_training_then_resume_continues_from_the_last_complete_checkpoint(datasets, tmp_path):
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "i2i_cli", "train", "--model", "pix2pix", "--data", str(datasets["aligned"]),
           "--out", str(run), "--size", "32", "--set", "ngf=8", "--set", "ndf=8", "--steps", "400",
           "--save-every", "7", "--log-every", "1", "--device", "cpu"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline:
        latest = run / "latest.json"
        if latest.exists() and json.loads(latest.read_text())["step"] >= 14:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = max(_steps_logged(run))
    last = ckpt.latest_checkpoint(run)
    assert last is not None
    ckpt.load_trainer_state(last)  # complete and loadable
    saved_step = json.loads((run / "latest.json").read_text())["step"]
    assert saved_step <= killed_at

    resume = subprocess.run(cmd[:-8] + ["--steps", str(saved_step + 7), "--save-every", "7", "--log-every", "1",
                                        "--device", "cpu", "--resume"], env=env, capture_output=True, text=True)
    assert resume.returncode == 0, resume.stderr
    assert _steps_logged(run) == list(range(1, saved_step + 8))
    assert not list(run.rglob(".i2i-tmp-*"))


def _nan_after(monkeypatch, good_steps: int) -> None:
    original = Pix2Pix._g_loss
    calls = {"n": 0}

    def flaky(self, batch, cache):
        calls["n"] += 1
        terms = original(self, batch, cache)
        if calls["n"] > good_steps:
            terms["G_L1"] = terms["G_L1"] * float("nan")
        return terms

    monkeypatch.setattr(Pix2Pix, "_g_loss", flaky)


def test_nan_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(datasets, tmp_path, monkeypatch):
    _nan_after(monkeypatch, 4)
    options = TrainOptions(data=datasets["aligned"], out=tmp_path / "run", steps=10, device="cpu", save_every=2)
    with pytest.raises(TrainingDiverged) as info:
        train("pix2pix", tiny_config("pix2pix"), options)
    message = str(info.value)
    assert "step 5" in message and "G_L1" in message and "lower learning rate" in message
    last = ckpt.latest_checkpoint(tmp_path / "run")
    assert last.name == "step_00000004"
    weights = ckpt.load_tensors(last / "weights.safetensors")
    assert all(torch.isfinite(v).all() for v in weights.values() if v.dtype.is_floating_point)


def test_nan_policy_skip_skips_the_step_and_goes_on(datasets, tmp_path, monkeypatch):
    _nan_after(monkeypatch, 4)
    options = TrainOptions(data=datasets["aligned"], out=tmp_path / "run", steps=6, device="cpu", nan_policy="skip")
    result = train("pix2pix", tiny_config("pix2pix"), options)
    assert result.skipped_steps == 2
    assert all(math.isfinite(v) for v in result.final_losses.values())


def test_disk_full_is_one_line_and_earlier_checkpoints_stay_intact(datasets, tmp_path, monkeypatch):
    original = ckpt.save_tensors
    calls = {"n": 0}

    def full_disk(path, tensors, metadata):
        calls["n"] += 1
        if calls["n"] > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        original(path, tensors, metadata)

    monkeypatch.setattr(ckpt, "save_tensors", full_disk)
    options = TrainOptions(data=datasets["aligned"], out=tmp_path / "run", steps=4, device="cpu", save_every=2)
    with pytest.raises(I2IError, match="disk is full"):
        train("pix2pix", tiny_config("pix2pix"), options)
    last = ckpt.latest_checkpoint(tmp_path / "run")
    assert last.name == "step_00000002"
    ckpt.load_tensors(last / "weights.safetensors")
    assert not list((tmp_path / "run").rglob(".i2i-tmp-*"))


def test_checkpoints_from_another_method_or_a_newer_format_are_refused(datasets, tmp_path):
    train("pix2pix", tiny_config("pix2pix"), TrainOptions(data=datasets["aligned"], out=tmp_path / "r", steps=1,
                                                          device="cpu"))
    config_path = tmp_path / "r" / "config.json"
    config = json.loads(config_path.read_text())
    config["format"] = 99
    config_path.write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="upgrade i2i"):
        ckpt.load_for_inference(tmp_path / "r")
    config["format"] = 1
    config["config"]["num_heads"] = 3
    config_path.write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="num_heads are not pix2pix options"):
        ckpt.load_for_inference(tmp_path / "r")
    config["config"].pop("num_heads")
    config["config"]["ngf"] = 16
    config_path.write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="do not fit"):
        ckpt.load_for_inference(tmp_path / "r")


def test_truncated_weights_file_is_a_clear_error(datasets, tmp_path):
    train("pix2pix", tiny_config("pix2pix"), TrainOptions(data=datasets["aligned"], out=tmp_path / "r", steps=1,
                                                          device="cpu"))
    weights = ckpt.latest_checkpoint(tmp_path / "r") / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="corrupt or unreadable"):
        ckpt.load_for_inference(tmp_path / "r")


def test_kill_9_during_translate_leaves_only_complete_files_and_a_rerun_finishes(datasets, tmp_path):
    from PIL import Image

    from i2i_cli.data.images import load_image

    train("pix2pix", tiny_config("pix2pix"), TrainOptions(data=datasets["aligned"], out=tmp_path / "run", steps=1,
                                                          device="cpu"))
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    for i in range(150):
        Image.new("RGB", (96, 96), (i, 2 * i % 255, 40)).save(src / f"{i:03d}.png")
    cmd = [sys.executable, "-m", "i2i_cli", "translate", "--checkpoint", str(tmp_path / "run"), str(src), str(out),
           "--device", "cpu"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and len(list(out.glob("*.png"))) < 20:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = sorted(out.glob("*.png"))
    assert 0 < len(done) < 150
    for file in done:
        assert load_image(file).shape == (96, 96, 3)  # every file that exists is complete
    before = {file: file.stat().st_mtime_ns for file in done}
    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert all(file.stat().st_mtime_ns == stamp for file, stamp in before.items())  # kept, not redone
    assert len(list(out.glob("*.png"))) == 150 and not list(out.glob(".i2i-tmp-*"))
