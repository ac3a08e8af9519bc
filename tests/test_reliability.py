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
from i2i_cli.models.methods.pix2pix import Pix2Pix
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


# --- issue 20: outputs checked before the work, file modes, finished runs, Pillow's guard ------------------

from typer.testing import CliRunner  # noqa: E402

from i2i_cli.main import app  # noqa: E402

runner = CliRunner()
TINY_TRAIN = ["--model", "pix2pix", "--size", "32", "--set", "ngf=8", "--set", "ndf=8", "--device", "cpu"]


@pytest.mark.parametrize("case", ["out_is_file", "out_under_file", "json_is_folder"])
def test_train_refuses_outputs_it_cannot_write_in_one_line_before_any_work(datasets, tmp_path, case):
    """`train --out FILE` said "unexpected NotADirectoryError" after building the data and the model."""
    blocker = tmp_path / "notes.txt"
    blocker.write_text("mine")
    out, extra = {"out_is_file": (blocker, []), "out_under_file": (blocker / "run", []),
                  "json_is_folder": (tmp_path / "run", ["--json", str(tmp_path)])}[case]
    result = runner.invoke(app, ["train", *TINY_TRAIN, "--data", str(datasets["aligned"]), "--out", str(out),
                                 "--steps", "1", *extra])
    assert result.exit_code == 2, result.output
    line = result.output.strip()
    assert "\n" not in line and "unexpected" not in line and ("--out" in line or "--json" in line)
    assert blocker.read_text() == "mine" and not (tmp_path / "run").exists()


def test_the_writability_probe_is_a_real_write(tmp_path, monkeypatch):
    """Root passes os.access on a read-only folder, so the check also creates (and removes) a file; a folder
    where that creation fails is refused whoever runs the test."""
    from i2i_cli import fsutil

    def refuse(folder, prefix):
        raise PermissionError(13, "Permission denied", str(folder))

    monkeypatch.setattr(fsutil, "create_temporary", refuse)
    with pytest.raises(I2IError, match="cannot write in .*Permission denied"):
        fsutil.check_output_folder(tmp_path / "new" / "run", "--out")
    monkeypatch.undo()
    fsutil.check_output_folder(tmp_path / "new" / "run", "--out")
    assert list(tmp_path.iterdir()) == []  # the probe left nothing, and nothing was created


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into a 0555 folder, so there is nothing to refuse")
def test_train_under_a_read_only_folder_is_refused_before_any_work(datasets, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        result = runner.invoke(app, ["train", *TINY_TRAIN, "--data", str(datasets["aligned"]),
                                     "--out", str(locked / "run"), "--steps", "1"])
    finally:
        locked.chmod(0o755)
    assert result.exit_code == 2 and "cannot write" in result.output and "unexpected" not in result.output


def _modes(folder) -> dict[str, int]:
    return {p.relative_to(folder).as_posix(): p.stat().st_mode & 0o777 for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_every_file_written_follows_the_umask(datasets, tmp_path, umask):
    """Atomic writes went through mkstemp: PNGs, config.json, weights, index.html, .onnx were 0600 whatever the
    umask (colleagues could not read them)."""
    from PIL import Image

    src = tmp_path / "in"
    src.mkdir()
    Image.new("RGB", (32, 32), (9, 99, 199)).save(src / "a.png")
    previous = os.umask(umask)
    try:
        trained = runner.invoke(app, ["train", *TINY_TRAIN, "--data", str(datasets["aligned"]), "--out",
                                      str(tmp_path / "run"), "--steps", "1", "--json", str(tmp_path / "t.json")])
        translated = runner.invoke(app, ["translate", "-c", str(tmp_path / "run"), str(src), str(tmp_path / "out"),
                                         "--json", str(tmp_path / "s.json")])
        exported = runner.invoke(app, ["export", "-c", str(tmp_path / "run"), "--out", str(tmp_path / "m.onnx")])
    finally:
        os.umask(previous)
    assert trained.exit_code == 0 and translated.exit_code == 0 and exported.exit_code == 0, exported.output
    modes = _modes(tmp_path)
    for name in ("run/config.json", "run/index.html", "run/latest.json", "out/a.png", "t.json", "s.json", "m.onnx"):
        assert name in modes, name
    assert any(n.endswith("weights.safetensors") for n in modes)
    src_modes = {n for n in modes if n.startswith("in/")}
    wrong = {n: oct(m) for n, m in modes.items() if m != 0o666 & ~umask and n not in src_modes}
    assert not wrong


def test_resume_of_a_finished_run_says_so_and_how_to_extend_it(datasets, tmp_path):
    """`--resume` of a finished run printed "12 steps in 0.1 s" and an empty table."""
    run = tmp_path / "run"
    assert runner.invoke(app, ["train", *TINY_TRAIN, "--data", str(datasets["aligned"]), "--out", str(run),
                               "--steps", "2"]).exit_code == 0
    before = (run / "latest.json").read_text()
    for extra in ([], ["--steps", "2"], ["--steps", "1"]):
        result = runner.invoke(app, ["train", "--out", str(run), "--resume", "--device", "cpu", *extra])
        assert result.exit_code == 2, result.output
        assert "is finished (2 of" in result.output and "--resume --steps 3" in result.output
    assert (run / "latest.json").read_text() == before
    extended = runner.invoke(app, ["train", "--out", str(run), "--resume", "--device", "cpu", "--steps", "3"])
    assert extended.exit_code == 0, extended.output
    assert json.loads((run / "latest.json").read_text())["step"] == 3


def test_importing_i2i_leaves_pillows_guard_alone_and_i2i_keeps_its_own_limit(tmp_path, monkeypatch):
    code = ("import PIL.Image as I; before = I.MAX_IMAGE_PIXELS; import i2i_cli.main, i2i_cli.data.images, "
            "i2i_cli.inference; print(I.MAX_IMAGE_PIXELS == before and before is not None)")
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           env=dict(os.environ, PYTHONPATH=os.getcwd()))
    assert shown.stdout.strip() == "True", shown.stderr
    from PIL import Image

    from i2i_cli.data.images import load_image

    Image.new("RGB", (60, 50)).save(tmp_path / "big.png")  # 3,000 px
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # another library's strict guard (bomb past 2,000 px)
    with pytest.raises(Image.DecompressionBombError):
        Image.open(tmp_path / "big.png")  # Pillow's guard still works for other code
    assert load_image(tmp_path / "big.png", max_pixels=10_000).shape == (50, 60, 3)  # i2i's limit decides
    with pytest.raises(I2IError, match="--max-pixels"):
        load_image(tmp_path / "big.png", max_pixels=2_000)


@pytest.mark.parametrize("command", [["train"], ["translate"], ["eval"], ["eval", "fcn"], ["errormap"],
                                     ["data", "check"]])
def test_every_command_that_decodes_images_offers_max_pixels(command):
    help_text = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "200"}).output
    assert "--max-pixels" in help_text


def test_max_pixels_reaches_the_decoding_of_a_command(datasets, tmp_path, monkeypatch):
    monkeypatch.setenv("I2I_MAX_PIXELS", "0")  # restored after the test: --max-pixels sets it for the workers
    result = runner.invoke(app, ["data", "check", str(datasets["aligned"]), "--max-pixels", "100"])
    assert "past the limit of 100" in result.output and "--max-pixels" in result.output
    assert os.environ["I2I_MAX_PIXELS"] == "100"


def test_npy_label_files_are_named_as_unread_with_the_formats_that_are(tmp_path):
    import numpy as np

    from i2i_cli.errors import DataError
    from i2i_cli.evaluation.fcn_score import match_labels

    (tmp_path / "fake").mkdir()
    (tmp_path / "labels").mkdir()
    np.save(tmp_path / "labels" / "0001.npy", np.zeros((4, 4), dtype=np.int64))
    with pytest.raises(DataError, match=r"found only \.npy files, which are not read.*png"):
        match_labels(tmp_path / "fake", tmp_path / "labels")


def test_methods_show_suggests_the_close_name():
    result = runner.invoke(app, ["methods", "show", "cyclegann"])
    assert result.exit_code == 2 and "did you mean cyclegan" in result.output
