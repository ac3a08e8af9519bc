"""Trial round 3 (issue 25): each class of problem closed by one rule, tested over the cases the rule covers."""

from __future__ import annotations

import functools
import hashlib
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from i2i_cli.main import app
from tests.run_factory import make_run

runner = CliRunner()


def _cli(*args: str):
    return runner.invoke(app, [str(a) for a in args], terminal_width=200)


def _flat(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("runs") / "p2p", "pix2pix")


def _photo(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(path)


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


# --- item 1: no output may land on any input of the run -------------------------------------------------------

@pytest.mark.parametrize("source, out", [
    ("data/nest", "data"),           # OUT contains SOURCE: data/nest/nest/a.png -> data/nest/a.png (an input)
    ("data", "data/nest"),           # OUT inside SOURCE
    ("data", "data"),                # OUT is SOURCE
    ("data/nest/a.png", "data/nest"),  # one image into its own folder
    ("data/nest", "link"),           # a symlink to the input folder
])
@pytest.mark.parametrize("overwrite", [False, True])
def test_no_output_lands_on_an_input_whatever_the_nesting(run, tmp_path, source, out, overwrite):
    _photo(tmp_path / "data" / "nest" / "a.png", 1)
    _photo(tmp_path / "data" / "nest" / "nest" / "a.png", 2)
    (tmp_path / "link").symlink_to(tmp_path / "data" / "nest")
    before = _digest(tmp_path / "data")
    extra = ["--overwrite"] if overwrite else []
    result = _cli("translate", "-c", run, tmp_path / source, tmp_path / out, "--device", "cpu", *extra)
    assert result.exit_code == 2, result.output
    assert "nothing was written" in _flat(result.output) and "Traceback" not in result.output
    assert _digest(tmp_path / "data") == before


def test_styled_and_video_outputs_follow_the_same_rule(tmp_path):
    from i2i_cli.errors import ConfigError
    from i2i_cli.inference import TranslateOptions, check_translation

    _photo(tmp_path / "a.png", 1)
    (tmp_path / "clip.mp4").write_bytes(b"")
    with pytest.raises(ConfigError, match="would replace an input"):
        check_translation(tmp_path / "clip.mp4", tmp_path, TranslateOptions(), videos=[tmp_path / "clip.mp4"])
    _photo(tmp_path / "in" / "x.png", 4)
    with pytest.raises(ConfigError, match="would replace an input"):  # every style's output is checked
        check_translation(tmp_path / "in" / "x.png", tmp_path / "in", TranslateOptions(), tags=["cat", ""])


# --- items 5, 11: every numeric option and environment variable checked before any work ------------------------

def _commands(typer_app, path=()):
    for info in typer_app.registered_commands:
        yield (*path, info.name or info.callback.__name__), info.callback
    for group in typer_app.registered_groups:
        yield from _commands(group.typer_instance, (*path, group.name))


def _numeric_options():
    import typing

    found = []
    for path, callback in _commands(app):
        hints = typing.get_type_hints(callback, include_extras=True)
        for name, hint in hints.items():
            base = typing.get_args(hint)[0] if typing.get_origin(hint) is typing.Annotated else hint
            kinds = set(typing.get_args(base)) or {base}
            if kinds & {int, float} and bool not in kinds:
                found.append((path, name))
    return found


@functools.cache
def _click_app():
    import typer

    return typer.main.get_command(app)


def _fast_cli(*args: str):
    """The click command built once (typer rebuilds it on every invoke)."""
    import click.testing

    return click.testing.CliRunner().invoke(_click_app(), [str(a) for a in args], terminal_width=200)


def _an_image_file():
    import tempfile

    from PIL import Image

    path = Path(tempfile.mkdtemp()) / "image.png"
    Image.new("RGB", (8, 8)).save(path)
    return path


def _required_arguments(path, tmp_path):
    """Values for a command's required arguments and options: an existing folder, or a choice's first value."""
    import typing

    command = _click_app()
    for part in path:
        command = command.commands[part]
    hints = typing.get_type_hints(dict(_commands(app))[path], include_extras=True)
    args = []
    for param in command.params:
        if not param.required:
            continue
        hint = typing.get_args(hints[param.name])[0]
        value = str(typing.get_args(hint)[0]) if typing.get_origin(hint) is typing.Literal else str(tmp_path)
        info = typing.get_args(hints[param.name])[1:]  # typer's Argument/Option: dir_okay=False asks for a file
        if any(getattr(i, "dir_okay", True) is False for i in info):  # (bench serve IMAGE): one outside tmp_path
            value = str(_an_image_file())
        args += [value] if param.param_type_name == "argument" else [param.opts[0], value]
    return args


NUMERIC = _numeric_options()


def test_every_numeric_option_has_a_declared_range():
    from i2i_cli.config import NUMERIC_RANGES

    assert len(NUMERIC) > 30
    assert not [f"{' '.join(p)} {n}" for p, n in NUMERIC if n not in NUMERIC_RANGES]


@pytest.mark.parametrize("path, name", NUMERIC, ids=[f"{' '.join(p)}-{n}" for p, n in NUMERIC])
def test_a_numeric_option_outside_its_range_is_one_line_before_any_work(tmp_path, path, name):
    from i2i_cli.config import NUMERIC_RANGES, option_name

    bound = NUMERIC_RANGES[name]
    value = bound.high + 1 if bound.low is None else bound.low - (0 if bound.low_open else 1)
    text = f"{value:g}"
    result = _fast_cli(*path, *_required_arguments(path, tmp_path), option_name(name), text)
    assert result.exit_code == 2, result.output
    assert f"{option_name(name)} {text}: must be {bound.describe()}" in result.output
    assert list(tmp_path.iterdir()) == []  # nothing made


@pytest.mark.parametrize("name, value", [("I2I_MAX_PIXELS", "abc"), ("I2I_MAX_PIXELS", "-3"),
                                         ("I2I_PROGRESS", "fancy"), ("I2I_PROGRESS_SECONDS", "soon"),
                                         ("I2I_OFFLINE", "maybe"), ("I2I_WEIGHTS_DIR", "/no/such/folder")])
def test_an_unusable_environment_variable_is_one_line_before_any_work(tmp_path, monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    result = _fast_cli("data", "check", tmp_path)
    assert result.exit_code == 2 and f"{name}={value}: takes" in result.output


def test_the_library_reads_the_pixel_limit_with_the_same_message(monkeypatch):
    from i2i_cli.data.images import max_pixels_default
    from i2i_cli.errors import I2IError

    monkeypatch.setenv("I2I_MAX_PIXELS", "abc")
    with pytest.raises(I2IError, match="I2I_MAX_PIXELS=abc: takes"):
        max_pixels_default()


def _method_numeric_fields():
    import typing

    from i2i_cli.models import registry

    found = {}
    for method in registry.list_methods():
        cls = registry.method_class(method).config_class
        hints = typing.get_type_hints(cls)
        for field in cls.options():
            if hints[field.name] in (int, float) and field.name not in found:
                found[field.name] = method
    return sorted((method, name) for name, method in found.items())


@pytest.mark.parametrize("method, name", _method_numeric_fields())
def test_every_numeric_method_option_refuses_a_value_below_its_range(method, name):
    """--set and --config: one range rule on the config dataclass (widths, rates > 0; fractions in [0, 1])."""
    from i2i_cli.config import resolve_config
    from i2i_cli.errors import ConfigError

    with pytest.raises(ConfigError, match=f"--set {name}=-4: must be"):
        resolve_config(method, overrides=[f"{name}=-4"])


def test_a_method_option_error_names_where_it_was_written(tmp_path):
    from i2i_cli.config import resolve_config
    from i2i_cli.errors import ConfigError

    config = tmp_path / "c.toml"
    config.write_text('ngf = "eight"\n')
    with pytest.raises(ConfigError, match=r"c.toml: ngf=eight: expected int"):
        resolve_config("pix2pix", config_file=config)
    with pytest.raises(ConfigError, match="--set lr=-1: must be 0 or more"):
        resolve_config("pix2pix", overrides=["lr=-1"])


@pytest.mark.parametrize("method, size, works", [("pix2pix", 48, "32 or 64")])  # cyclegan 16: same rule, 50 s
def test_a_size_the_networks_cannot_take_is_refused_before_the_run_folder_with_sizes_that_work(
        datasets, tmp_path, method, size, works):
    run = tmp_path / "r"
    result = _cli("train", "--model", method, "--data", datasets["aligned"], "--out", run, "--size", size,
                  "--steps", "1", "--set", "ngf=8", "--set", "ndf=8", "--device", "cpu", "--set", "load_size=0")
    assert result.exit_code == 2, result.output
    assert f"--size {size}: the {method} networks do not take" in result.output and "sizes that work" in result.output
    assert works in result.output and not run.exists()


# --- item 11: every write path maps OSError to the one-line message and leaves no temporary ----------------------

ERRNOS = {"ENOSPC": "the disk is full", "EROFS": "cannot write here", "EACCES": "cannot write here",
          "ENOENT": "could not write"}


def _write_path_command(kind, run, tmp_path):
    src = tmp_path / "in"
    _photo(src / "a.png", 1)
    return {
        "translate": ["translate", "-c", run, src, tmp_path / "out", "--device", "cpu"],
        "hub folder": ["hub", "push", run, "me/x", "--to-folder", tmp_path / "out" / "deeper" / "x"],
        "json report": ["data", "check", src, "--json", tmp_path / "report.json"],
    }[kind]


@pytest.mark.parametrize("kind", ["translate", "hub folder", "json report", "checkpoint"])
@pytest.mark.parametrize("name", sorted(ERRNOS))
def test_every_write_path_maps_os_errors_to_one_line_and_leaves_no_temporary(run, tmp_path, monkeypatch, kind, name):
    import errno
    import os

    from i2i_cli import fsutil
    from i2i_cli.errors import I2IError

    def refuse(tmp, target):
        raise OSError(getattr(errno, name), os.strerror(getattr(errno, name)), str(target))

    monkeypatch.setattr(fsutil, "commit", refuse)
    if kind == "checkpoint":
        with pytest.raises(I2IError, match=ERRNOS[name]):
            make_run(tmp_path / "out" / "run")
    else:
        result = _cli(*_write_path_command(kind, run, tmp_path))
        assert result.exit_code in (1, 2), result.output
        assert ERRNOS[name] in result.output and "unexpected" not in result.output
    assert not [p for p in tmp_path.rglob("*") if fsutil.TEMP_MARKER in p.name]


def test_hub_folder_into_a_missing_parent_is_written_without_the_local_data_path(run, tmp_path):
    import json

    out = tmp_path / "hubout" / "x"
    result = _cli("hub", "push", run, "me/x", "--to-folder", out)
    assert result.exit_code == 0, result.output
    assert (out / "model.safetensors").is_file()
    assert "/" not in json.loads((out / "config.json").read_text())["data"].get("root", "")


# --- items 2, 3, 4, 15: resume is the same run on the same data, by one trainer --------------------------------

TINY = ["--size", "32", "--set", "ngf=8", "--set", "ndf=8", "--device", "cpu"]


@pytest.fixture(scope="module")
def trained(datasets, tmp_path_factory):
    run = tmp_path_factory.mktemp("trained") / "run"
    result = _cli("train", "--model", "pix2pix", "--data", datasets["aligned"], "--out", run, "--steps", "2", *TINY)
    assert result.exit_code == 0, result.output
    return run


def _other_data(datasets, tmp_path, change):
    import shutil

    other = tmp_path / "other"
    shutil.copytree(datasets["aligned"], other)
    first = sorted((other / "train").iterdir())[0]
    if change == "a file removed":
        first.unlink()
    else:
        first.rename(first.with_name("renamed" + first.suffix))
    return other


@pytest.mark.parametrize("change", ["a file removed", "a file renamed"])
def test_resume_with_another_dataset_is_refused_like_any_changed_option(trained, datasets, tmp_path, change):
    other = _other_data(datasets, tmp_path, change)
    result = _cli("train", "--out", trained, "--resume", "--data", other, "--steps", "3", "--device", "cpu")
    assert result.exit_code == 2, result.output
    assert "cannot resume" in result.output and "other files" in result.output


def test_options_not_given_on_resume_come_from_the_run(trained, datasets):
    result = _cli("train", "--model", "pix2pix", "--data", datasets["aligned"], "--out", trained, "--resume",
                  "--steps", "3", "--set", "lambda_L1=10", "--device", "cpu")
    assert result.exit_code == 2 and "lambda_L1 (100.0 -> 10.0)" in result.output
    assert "ngf" not in result.output and "size (" not in result.output


def test_resume_says_the_step_or_refuses_a_folder_that_is_not_a_resumable_run(trained, tmp_path):
    hub = tmp_path / "hub"
    assert _cli("hub", "push", trained, "me/x", "--to-folder", hub).exit_code == 0
    result = _cli("train", "--out", hub, "--resume", "--steps", "3", "--device", "cpu")
    assert result.exit_code == 2 and "a Hub folder" in result.output and not (hub / "checkpoints").exists()
    killed = tmp_path / "killed"  # stopped before its first checkpoint
    killed.mkdir()
    (killed / "config.json").write_bytes((trained / "config.json").read_bytes())
    result = _cli("train", "--out", killed, "--resume", "--steps", "3", "--device", "cpu")
    assert result.exit_code == 2 and "no checkpoint yet" in result.output


def test_a_run_folder_is_locked_while_a_trainer_writes_it(trained):
    from i2i_cli.engine.checkpoint import run_lock

    with run_lock(trained):
        result = _cli("train", "--out", trained, "--resume", "--steps", "3", "--device", "cpu")
    assert result.exit_code == 2 and f"another `i2i train` (pid {os.getpid()})" in result.output


def test_the_lock_dies_with_its_process(tmp_path):
    import signal
    import subprocess
    import sys

    from i2i_cli.engine.checkpoint import run_lock

    # another trainer, as the kernel sees it: a process holding flock on RUN/.i2i-train.lock with its pid in it
    code = ("import fcntl, os, sys, time\nf = open(sys.argv[1] + '/.i2i-train.lock', 'a+')\n"
            "fcntl.flock(f, fcntl.LOCK_EX); f.write(str(os.getpid())); f.flush(); print('locked', flush=True)\n"
            "time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    from i2i_cli.errors import ConfigError

    with pytest.raises(ConfigError, match=f"pid {holder.pid}"):
        with run_lock(tmp_path):
            pass
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    with run_lock(tmp_path):  # no stale lock after kill -9
        pass


def test_concurrent_translates_into_one_folder_share_the_work(run, tmp_path):
    import threading

    import i2i_cli

    for k in range(16):
        _photo(tmp_path / "in" / f"{k:02d}.png", k)
    translator = i2i_cli.load(run, device="cpu")
    results = []

    def go():
        results.append(translator.translate_folder(tmp_path / "in", tmp_path / "out", threads=1))

    threads = [threading.Thread(target=go) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 2 and all(len(r.written) + r.skipped == 16 and not r.bad for r in results)
    assert len(list((tmp_path / "out").glob("*.png"))) == 16


# --- item 17: each command sweeps its own stale temporaries, never a live process's ---------------------------

@pytest.mark.parametrize("command", ["translate", "hub folder", "train lock"])
def test_a_command_sweeps_stale_temporaries_older_than_itself(run, tmp_path, command):
    import time

    from i2i_cli.engine.checkpoint import run_lock
    from i2i_cli.fsutil import TEMP_MARKER

    out = tmp_path / "out"
    out.mkdir()
    stale, live = out / f"{TEMP_MARKER}x.onnx.1", out / f"{TEMP_MARKER}x.mp4.2"
    stale.write_bytes(b"old")
    live.write_bytes(b"being written")
    os.utime(stale, (time.time() - 3600, time.time() - 3600))
    os.utime(live, (time.time() + 60, time.time() + 60))
    if command == "translate":
        _photo(tmp_path / "in" / "a.png", 1)
        assert _cli("translate", "-c", run, tmp_path / "in", out, "--device", "cpu").exit_code == 0
    elif command == "hub folder":
        (stale.rename(tmp_path / f"{TEMP_MARKER}hub.abc"), live.rename(tmp_path / f"{TEMP_MARKER}hub.def"))
        stale, live = tmp_path / f"{TEMP_MARKER}hub.abc", tmp_path / f"{TEMP_MARKER}hub.def"
        assert _cli("hub", "push", run, "me/x", "--to-folder", tmp_path / "hub").exit_code == 0
    else:
        with run_lock(out):
            pass
    assert not stale.exists() and live.exists()


# --- item 6: the opset asked for is the opset written, or refused ---------------------------------------------

@pytest.mark.parametrize("opset", [5, 99])
def test_an_opset_that_cannot_be_written_is_refused_before_the_export(run, tmp_path, opset):
    result = _cli("export", "-c", run, "--out", tmp_path / "m.onnx", "--opset", opset)
    assert result.exit_code == 2 and f"--opset {opset}" in result.output and not (tmp_path / "m.onnx").exists()


def test_an_export_written_in_another_opset_is_refused():
    import onnx

    from i2i_cli.errors import I2IError
    from i2i_cli.export import refuse_other_opset

    model = onnx.helper.make_model(onnx.helper.make_graph([], "g", [], []),
                                   opset_imports=[onnx.helper.make_opsetid("", 18)])
    refuse_other_opset(model, 18)
    with pytest.raises(I2IError, match="--opset 20: the exporter wrote opset 18"):
        refuse_other_opset(model, 20)


# --- item 14: rich markup never eats text: every rendered help, every message ---------------------------------

def _click_commands(command=None, path=()):
    command = command or _click_app()
    if hasattr(command, "commands"):
        for name, sub in command.commands.items():
            yield from _click_commands(sub, (*path, name))
    else:
        yield path, command


def test_every_bracketed_word_of_every_help_text_is_rendered():
    import re

    checked = 0
    for path, command in _click_commands():
        texts = [command.help or ""] + [getattr(p, "help", None) or "" for p in command.params] + \
                [getattr(p, "rich_help_panel", None) or "" for p in command.params]
        words = {w for text in texts for w in re.findall(r"\[[\w-]+\]", text.replace("\\[", "["))}
        if not words:
            continue
        rendered = _flat(_fast_cli(*path, "--help").output)
        assert not [w for w in words if w not in rendered], (path, words)
        checked += 1
    assert checked >= 2  # translate's [video], train's [trackers]


@pytest.mark.parametrize("printer", ["fail", "warn"])
def test_messages_keep_their_brackets(capsys, printer):
    from i2i_cli import cli

    getattr(cli, printer)("install it: pip install 'i2i[video]' (see [docs])")
    assert "pip install 'i2i[video]' (see [docs])" in _flat(capsys.readouterr().err)


# --- item 7: a group (domain, side) without training images is an error in check and train alike ----------------

@pytest.mark.parametrize("layout, made, missing", [
    ("domains", ["train/cat", "train/dog", "val/cat", "val/dog", "val/rare"], "train/rare"),
    ("domains", ["train/cat", "train/dog", "train/rare/.keep", "val/rare"], "train/rare"),
    ("unaligned", ["trainA", "testA", "testB"], "trainB"),
])
def test_a_group_without_training_images_is_refused_by_check_and_train(tmp_path, layout, made, missing):
    data = tmp_path / "data"
    for folder in made:
        if folder.endswith(".keep"):
            (data / folder).parent.mkdir(parents=True, exist_ok=True)
            continue
        for k in range(2):
            _photo(data / folder / f"{k}.png", k)
    check = _cli("data", "check", data)
    assert check.exit_code == 1 and str(data / missing) in _flat(check.output), check.output
    model = "starganv2" if layout == "domains" else "cyclegan"
    result = _cli("train", "--model", model, "--data", data, "--out", tmp_path / "run", "--steps", "1")
    assert result.exit_code == 2 and f"{data / missing}: no training images" in _flat(result.output), result.output
    assert not (tmp_path / "run").exists()


# --- item 8: error maps compare images of one size, or refuse ---------------------------------------------------

@pytest.mark.parametrize("which", ["y", "aligned"])
def test_errormap_refuses_images_of_another_size_instead_of_squashing_them(tmp_path, which):
    from i2i_cli.errormap import analyse_pair, build_mappers
    from i2i_cli.errors import BadImageError

    x = np.zeros((32, 32, 3), np.uint8)
    other = np.zeros((32, 48, 3), np.uint8)
    y, aligned = (other, None) if which == "y" else (x, other)
    with pytest.raises(BadImageError, match="48x32, but x is 32x32: error maps compare pixel to pixel"):
        analyse_pair(x, y, build_mappers(["l1"], {}), misalign="given-whole" if aligned is not None else "none",
                     names=("x", "y"), aligned=aligned)


# --- item 18: links passed over are listed, with the bad files ------------------------------------------------

@pytest.mark.parametrize("command", ["translate", "data check"])
def test_broken_links_and_linked_folders_are_listed_not_skipped_silently(run, tmp_path, command):
    src = tmp_path / "in"
    _photo(src / "train" / "a.png", 1)
    _photo(tmp_path / "elsewhere" / "b.png", 2)
    (src / "train" / "gone.png").symlink_to(tmp_path / "missing.png")
    (src / "train" / "linked").symlink_to(tmp_path / "elsewhere")
    args = ["translate", "-c", run, src, tmp_path / "out", "--device", "cpu"] if command == "translate" else \
        ["data", "check", src]
    result = _cli(*args)
    assert result.exit_code == 1, result.output
    assert "gone.png: a broken symbolic link" in result.output and "linked: a symbolic link to a folder" in result.output


# --- item 10: one exit rule for the commands that go on past bad files ---------------------------------------------

class _CountReadable:
    """A throw-away folder metric that lists the files it cannot read, as FID's feature loader does."""

    name = "readable"
    keys = ("readable",)
    min_images = 1

    def compute(self, ctx):
        from i2i_cli.data.images import list_images, load_image
        from i2i_cli.errors import BadImageError

        good = 0
        for file in list_images(ctx.fake):
            try:
                load_image(file)
                good += 1
            except BadImageError as exc:
                ctx.bad.append((str(file), exc.reason))
        ctx.values["readable"] = float(good)


@pytest.mark.parametrize("command", ["translate", "eval", "data check"])
def test_commands_that_go_on_past_bad_files_list_them_and_exit_1(run, tmp_path, monkeypatch, command):
    from i2i_cli.evaluation import metrics

    class Readable(_CountReadable, metrics.FolderMetric):
        pass

    monkeypatch.setattr(sys.modules[__name__], "Readable", Readable, raising=False)
    monkeypatch.setitem(metrics._METRICS, "readable", f"{__name__}:Readable")
    for folder in ("real", "fake"):
        _photo(tmp_path / folder / "train" / "a.png", 1)
        _photo(tmp_path / folder / "train" / "b.png", 2)
    (tmp_path / "fake" / "train" / "zero.png").write_bytes(b"")
    args = {"translate": ["translate", "-c", run, tmp_path / "fake", tmp_path / "out", "--device", "cpu"],
            "eval": ["eval", "--real", tmp_path / "real", "--fake", tmp_path / "fake", "--metrics", "readable",
                     "--device", "cpu"],
            "data check": ["data", "check", tmp_path / "fake"]}[command]
    result = _cli(*args)
    assert result.exit_code == 1, result.output
    assert "zero.png" in result.output


@pytest.mark.parametrize("broken", [1, 2])
def test_unreadable_training_images_are_decided_before_the_first_step(datasets, tmp_path, broken):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(datasets["aligned"], data)
    for k in range(broken):
        (data / "train" / f"zero{k}.png").write_bytes(b"")
    result = _cli("train", "--model", "pix2pix", "--data", data, "--out", tmp_path / "run", "--steps", "1", *TINY)
    text = _flat(result.output)
    if broken == 1:  # under 1% of 9... one file is always allowed: named, skipped, the run goes on
        assert result.exit_code == 0 and "1 unreadable training image(s) will be skipped" in text, result.output
    else:
        assert result.exit_code == 2 and "2 of 10 training images are unreadable" in text, result.output
        assert not (tmp_path / "run").exists()


def test_tables_in_logs_are_whole(monkeypatch):
    import io

    from rich.console import Console

    from i2i_cli import cli

    log = io.StringIO()
    monkeypatch.setattr(cli, "console", Console(file=log, width=80, force_terminal=False, highlight=False))
    long = "translate cyclegan 256 px batch 8 bf16 channels-last compiled reduce-overhead " * 2
    cli.print_table("bench", ["benchmark", "median", "spread"], [(long, 12.3456, "11.9 - 12.8 ms (n=10)")])
    assert long.strip() in log.getvalue() and "11.9 - 12.8 ms (n=10)" in log.getvalue() and "…" not in log.getvalue()
