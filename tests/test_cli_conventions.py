"""CLI conventions users rely on: choices in --help, config choices checked before a run folder exists,
--json - and the one rule for an existing --json file, answers before torch loads, progress lines in logs."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from i2i_cli.main import app

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def _cli(*args: str, **kwargs):
    return runner.invoke(app, list(args), terminal_width=200, **kwargs)


def _flat(text: str) -> str:
    """Click's usage errors come in a box 80 columns wide: the message without the box and line breaks."""
    return " ".join(text.replace("│", " ").split())


# --- 7. choices ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("command, option, choices", [
    ("train", "--precision", "fp32|bf16|fp16"),
    ("train", "--direction", "AtoB|BtoA"),
    ("train", "--nan-policy", "stop|skip"),
    ("train", "--data-cache", "auto|memory|disk|off"),
    ("translate", "--blend", "linear|cosine"),
    ("translate", "--precision", "auto|fp32|bf16|fp16"),
    ("export", "--precision", "fp32|fp16|bf16|int8"),
    ("eval", "--mode", "clean|legacy_tensorflow|legacy_pytorch|stargan_v2|stargan-v2"),
    ("export", "--direction", "AtoB|BtoA"),
])
def test_help_lists_the_choices(command, option, choices):
    result = _cli(command, "--help")
    line = next(line for line in result.output.splitlines() if option in line)
    assert choices in line or (line.split()[2] == "MODE" and all(c in result.output for c in choices.split("|")))


def test_a_value_outside_the_choices_is_refused_when_parsed(tmp_path):
    result = _cli("translate", str(tmp_path), str(tmp_path / "out"), "--blend", "gaussian")
    assert result.exit_code == 2 and "--blend gaussian: choose linear or cosine" in _flat(result.output)
    result = _cli("train", "--model", "pix2pix", "--data", str(tmp_path), "--out", str(tmp_path / "r"),
                  "--device", "gpu")
    assert result.exit_code == 2 and "--device gpu: not a device; use auto, cpu, cuda or cuda:N" in result.output


def test_shell_completion_is_offered():
    assert "--install-completion" in _cli("--help").output


def test_config_choice_refused_before_the_run_folder_is_made(datasets, tmp_path):
    run = tmp_path / "r"
    base = ["train", "--model", "pix2pix", "--data", str(datasets["aligned"]), "--out", str(run), "--steps", "1"]
    result = _cli(*base, "--set", "gan_mode=wgan")
    assert result.exit_code == 2, result.output
    assert "--set gan_mode=wgan: choose vanilla, lsgan, nonsaturating, wgangp (did you mean wgangp?)" in result.output
    assert not run.exists()  # so the corrected command is not refused as "already holds a run"
    config = tmp_path / "c.toml"
    config.write_text('norm = "layer"\n')
    result = _cli(*base, "--config", str(config))
    assert result.exit_code == 2 and "norm=layer: choose batch, instance, none" in result.output
    assert not run.exists()


def test_every_fixed_choice_field_is_typed_with_its_choices():
    from i2i_cli.config import choices
    from i2i_cli.models import registry

    for name in registry.list_methods():
        config = registry.method_class(name).config_class()  # defaults (resolve_config would refuse missing captions)
        hints = __import__("typing").get_type_hints(type(config))
        for key in ("gan_mode", "norm", "init_type", "lr_mode", "direction", "loss_mode", "inference_norm"):
            if key in hints:
                allowed = choices(hints[key])
                assert allowed and getattr(config, key) in allowed, (name, key)


# --- 8. --json -----------------------------------------------------------------------------------------------


def test_json_dash_writes_json_alone_to_stdout(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["pretrained", "list", "--json", "-"])
    assert result.exit_code == 0, result.output
    listed = json.loads(result.stdout)  # the table went to stderr: stdout is valid JSON
    assert listed and "url" in listed[0]
    assert not (tmp_path / "-").exists()


def test_an_existing_json_file_is_kept_unless_overwrite(tmp_path):
    target = tmp_path / "list.json"
    target.write_text("mine")
    result = _cli("pretrained", "list", "--json", str(target))
    assert result.exit_code == 2
    assert f"--json {target}: already exists; pass --overwrite to replace it" in result.output
    assert target.read_text() == "mine"
    assert _cli("pretrained", "list", "--json", str(target), "--overwrite").exit_code == 0
    assert json.loads(target.read_text())


def test_the_json_rule_is_checked_before_the_work(datasets, tmp_path):
    target = tmp_path / "r.json"
    target.write_text("mine")
    run = tmp_path / "r"
    result = _cli("train", "--model", "pix2pix", "--data", str(datasets["aligned"]), "--out", str(run),
                  "--json", str(target))
    assert result.exit_code == 2 and not run.exists() and target.read_text() == "mine"
    result = _cli("data", "check", str(datasets["aligned"]), "--json", str(tmp_path))
    assert result.exit_code == 2 and "is a folder; pass a file name" in result.output


# --- 10. answers before torch --------------------------------------------------------------------------------


@pytest.mark.parametrize("args, expected", [
    (["train", "--model", "pix2pix", "--data", "missing/", "--out", "r"], "--data missing: no such folder"),
    (["translate", "missing/", "out/"], "SOURCE missing: no such image, video or folder"),
    (["train", "--model", "pix2pixx", "--data", ".", "--out", "r"], "(did you mean pix2pix?)"),
    (["train", "--mdoel", "pix2pix"], "No such option"),
])
def test_typos_and_missing_folders_are_answered_before_torch_loads(args, expected, tmp_path):
    probe = ("import sys\nfrom i2i_cli.main import main\nsys.argv = ['i2i', *sys.argv[1:]]\n"
             "try:\n    main()\nexcept SystemExit as e:\n    code = e.code\n"
             "print('TORCH', 'torch' in sys.modules)\nsys.exit(code)\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    done = subprocess.run([sys.executable, "-c", probe, *args], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert expected in done.stderr
    assert "TORCH False" in done.stdout


# --- 9. progress in logs -------------------------------------------------------------------------------------


def test_plain_progress_lines_on_a_stream_that_is_not_a_terminal():
    from i2i_cli.progress import progress

    stream = io.StringIO()  # isatty() is False, as for nohup, SLURM or CI logs
    with progress("train pix2pix", None, stream=stream, interval=0) as advance:
        advance(0, total=40, completed=0)
        for step in range(1, 41):
            advance(completed=step, status=f"G_GAN 0.693  G_L1 {1 / step:.3f}")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 40 and "\x1b" not in stream.getvalue()  # one line per step here, no terminal codes
    assert lines[19].startswith("train pix2pix:  20/40 (50%)") and "/s" in lines[19] and "ETA" in lines[19]
    assert "G_GAN 0.693" in lines[19] and "elapsed" in lines[19]


def test_plain_progress_is_periodic_and_shows_life_while_nothing_advances():
    from i2i_cli.progress import PlainProgress

    now = [0.0]
    stream = io.StringIO()
    reporter = PlainProgress("export run.onnx", None, stream, interval=5.0, clock=lambda: now[0])
    reporter.tick()
    assert stream.getvalue() == ""  # nothing within the first interval
    now[0] = 6.0
    reporter.tick()
    assert stream.getvalue() == "export run.onnx:  working  elapsed 6 s\n"
    reporter.advance(0, total=100, completed=0)
    for step in range(1, 101):
        now[0] = 6.0 + step * 0.1  # 10 steps/s: a line every 5 s, not every step
        reporter.advance(completed=step)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 4, lines  # heartbeat, first step, after 5 s, the last step
    assert lines[-1].startswith("export run.onnx:  100/100 (100%)  10/s")


def test_train_in_a_log_prints_progress_lines(datasets, tmp_path, monkeypatch):
    monkeypatch.setenv("I2I_PROGRESS_SECONDS", "0")
    result = _cli("train", "--model", "pix2pix", "--data", str(datasets["aligned"]), "--out", str(tmp_path / "r"),
                  "--steps", "4", "--size", "32", "--set", "ngf=8", "--set", "ndf=8")
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("train pix2pix:  ")]
    assert any(line.startswith("train pix2pix:  4/4 (100%)") and "G_L1" in line for line in lines), lines


# --- 15. Python floor ----------------------------------------------------------------------------------------


def test_requires_python_has_tarfiles_extraction_filter():
    from packaging.specifiers import SpecifierSet

    text = (ROOT / "pyproject.toml").read_text()
    spec = SpecifierSet(next(line for line in text.splitlines() if line.startswith("requires-python")).split('"')[1])
    assert "3.10.11" not in spec and "3.11.3" not in spec  # no tarfile.data_filter there
    assert "3.10.12" in spec and "3.11.4" in spec and "3.12.0" in spec
    assert hasattr(tarfile, "data_filter")


# --- 13. torch's weights cache -------------------------------------------------------------------------------


def test_a_file_in_torchs_cache_is_used_not_downloaded_again(tmp_path, monkeypatch):
    from i2i_cli import weights

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("I2I_HOME", str(tmp_path / "i2i"))
    monkeypatch.setenv("I2I_OFFLINE", "1")  # a download attempt would fail
    hub = tmp_path / "torch" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    (hub / "vgg16-397923af.pth").write_bytes(b"torchvision put this here")
    assert weights.status("vgg16") == ("torch cache", hub / "vgg16-397923af.pth")
    resolved = weights.resolve("vgg16")
    assert resolved.source == "torch cache" and resolved.path == hub / "vgg16-397923af.pth"
    assert not (tmp_path / "i2i" / "weights").exists()  # no second copy
    monkeypatch.delenv("TORCH_HOME")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert weights.torch_cache_dir() == tmp_path / "xdg" / "torch" / "hub" / "checkpoints"


# --- 17. lists users copy from -------------------------------------------------------------------------------


@pytest.mark.parametrize("command", [["weights", "list"], ["pretrained", "list"]])
def test_lists_show_whole_urls_and_paths_on_a_narrow_terminal(command, tmp_path, monkeypatch):
    from i2i_cli import weights
    from i2i_cli.pretrained import PRETRAINED

    monkeypatch.setenv("I2I_HOME", str(tmp_path / ("deep/" * 12)))  # a long cache path
    result = runner.invoke(app, command, terminal_width=60)
    assert result.exit_code == 0, result.output
    urls = [e.url for e in weights.REGISTRY.values()] if command[0] == "weights" else [
        p.url for p in PRETRAINED.values()]
    lines = result.output.splitlines()
    for url in urls:
        assert any(line.strip().endswith(url) for line in lines), url
    assert "…" not in result.output and "..." not in result.output
    if command[0] == "weights":
        assert str(weights.cache_dir()) in result.output


# --- 12. the run report, warnings, wrapping ------------------------------------------------------------------


def test_loss_curves_have_axes_a_legend_and_a_scale_per_term():
    import re

    from i2i_cli.engine.report import loss_curves_svg, nice_ticks

    history = [{"step": s, "losses": {"G_L1": 40.0 - s / 10, "D_real": 0.5 - s / 1000}} for s in range(10, 210, 10)]
    svg = loss_curves_svg(history)
    texts = re.findall(r">([^<>]+)</text>", svg)
    assert texts.count("step") == 2  # an x-axis label per panel
    for tick in ("50", "100", "150", "200"):  # the shared step axis, in steps
        assert texts.count(tick) >= 2
    assert "G_L1" in texts and "D_real" in texts  # the legend
    assert "30" in texts and "0.4" in texts and "0.35" not in texts  # each term on its own scale
    assert nice_ticks(0.3, 0.49, 4) == [0.3, 0.4, 0.5] and nice_ticks(10, 200, 5) == [0, 50, 100, 150, 200]
    assert loss_curves_svg([]).startswith("<p>")


def test_sample_grid_rows_are_labelled():
    import numpy as np
    import torch

    from i2i_cli.engine.report import sample_grid

    rows = {"input": -torch.ones(2, 3, 32, 32), "output": torch.zeros(2, 3, 32, 32), "target": torch.ones(2, 3, 32, 32)}
    grid = sample_grid(rows)
    assert grid.shape[0] == 96 and grid.shape[1] > 64  # three rows, and a label column to their left
    label_column = grid[:, : grid.shape[1] - 64]
    for row in range(3):  # dark text on white in each row's label
        cell = label_column[row * 32:(row + 1) * 32]
        assert (cell < 100).any() and (cell == 255).any()
    assert np.array_equal(grid[0:32, -64:], np.zeros((32, 64, 3), np.uint8))  # the images themselves untouched


def test_library_warnings_do_not_reach_the_user():
    probe = ("import warnings\nfrom i2i_cli.cli import quiet_library_warnings\nquiet_library_warnings()\n"
             "warnings.warn_explicit('pretrained is deprecated', UserWarning, 'x.py', 1, module='torchvision.models')\n"
             "warnings.warn_explicit('torch.jit.script is deprecated', FutureWarning, 'y.py', 1, module='torch.jit')\n"
             "warnings.warn_explicit('ours', UserWarning, 'z.py', 1, module='someone_else')\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("I2I_DEBUG", None)
    quiet = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=60)
    assert "deprecated" not in quiet.stderr and "ours" in quiet.stderr
    debug = subprocess.run([sys.executable, "-c", probe], env={**env, "I2I_DEBUG": "1"}, capture_output=True,
                           text=True, timeout=60)
    assert "pretrained is deprecated" in debug.stderr and "torch.jit.script is deprecated" in debug.stderr


def test_table_titles_and_summary_lines_do_not_wrap_mid_path(tmp_path):
    from i2i_cli.cli import console, print_table

    long_path = tmp_path / ("a_long_folder_name/" * 6) / "out"
    with console.capture() as captured:
        print_table(f"translated into {long_path} in 12345.678 s", ["", ""], [("written", 3)])
        console.print(f"run: {long_path}  (report: {long_path / 'index.html'})")
    text = captured.get()
    assert f"translated into {long_path} in 12345.678 s" in text  # whole, on one line, whatever the width
    assert f"run: {long_path}  (report: {long_path / 'index.html'})" in text


def test_keep_sets_how_many_checkpoints_stay(datasets, tmp_path):
    run = tmp_path / "r"
    result = _cli("train", "--model", "pix2pix", "--data", str(datasets["aligned"]), "--out", str(run), "--steps", "3",
                  "--size", "32", "--set", "ngf=8", "--set", "ndf=8", "--save-every", "1", "--keep", "1")
    assert result.exit_code == 0, result.output
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["step_00000003"]  # steps 1 and 2 pruned
    assert "--keep" in (ROOT / "docs" / "train.md").read_text()
