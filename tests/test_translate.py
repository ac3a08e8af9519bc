"""`i2i translate`: sizes and names kept, bad files listed, nothing overwritten or half-written, tiles, shards."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from i2i_cli.data.images import load_image
from i2i_cli.main import app
from tests.run_factory import make_run

runner = CliRunner()


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("runs") / "runs" / "p2p", "pix2pix")


def _inputs(folder):
    (folder / "sub").mkdir(parents=True)
    Image.new("RGB", (37, 53), (10, 200, 30)).save(folder / "odd.jpg")
    Image.fromarray(np.arange(40 * 40, dtype=np.uint16).reshape(40, 40) * 40).save(folder / "sub" / "deep16.png")
    Image.new("L", (40, 40), 128).save(folder / "sub" / "grey.png")
    (folder / "broken.png").write_bytes(b"\x89PNG not really")
    Image.new("RGB", (4, 4)).save(folder / "tiny.png")


def _files(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def test_translate_keeps_sizes_and_names_lists_bad_files_and_never_overwrites(run, tmp_path):
    src, out, report = tmp_path / "in", tmp_path / "out", tmp_path / "t.json"
    _inputs(src)
    result = runner.invoke(app, ["translate", "--checkpoint", str(run), str(src), str(out), "--device", "cpu",
                                 "--json", str(report)])
    assert result.exit_code == 1, result.output
    assert "broken.png" in result.output and "tiny.png" in result.output and "smaller than" in result.output
    assert _files(out) == ["odd.png", "sub/deep16.png", "sub/grey.png"]
    assert load_image(out / "odd.png").shape == (53, 37, 3)
    assert load_image(out / "sub" / "deep16.png").shape == (40, 40, 3)
    summary = json.loads(report.read_text())
    assert len(summary["written"]) == 3 and len(summary["bad"]) == 2 and summary["device"] == "cpu"

    before = (out / "odd.png").read_bytes()
    (out / "odd.png").write_bytes(b"user's file")
    refused = runner.invoke(app, ["translate", "--checkpoint", str(run), str(src), str(out), "--json", str(report)])
    assert refused.exit_code == 2 and "--overwrite" in refused.output  # an existing --json file is kept
    second = tmp_path / "t2.json"
    again = runner.invoke(app, ["translate", "--checkpoint", str(run), str(src), str(out), "--json", str(second)])
    assert json.loads(second.read_text())["skipped"] == 3 and "skipped" in again.output
    assert (out / "odd.png").read_bytes() == b"user's file"
    strict = runner.invoke(app, ["translate", "--checkpoint", str(run), str(src), str(out), "--no-skip-existing"])
    assert strict.exit_code == 2 and "--overwrite" in strict.output
    runner.invoke(app, ["translate", "--checkpoint", str(run), str(src), str(out), "--overwrite"])
    assert (out / "odd.png").read_bytes() == before
    assert not [p for p in out.rglob("*") if ".i2i-tmp-" in p.name]  # only complete files, no temporaries

    inputs = {f: f.read_bytes() for f in src.rglob("*") if f.is_file()}
    for target in (src, src / "translated"):  # the input folder itself, or a folder inside it
        refused = runner.invoke(app, ["translate", "--checkpoint", str(run), str(src), str(target), "--overwrite"])
        assert refused.exit_code == 2 and "input folder" in refused.output
    refused = runner.invoke(app, ["translate", "--checkpoint", str(run), str(src / "sub" / "grey.png"),
                                  str(src / "sub"), "--overwrite"])
    assert refused.exit_code == 2 and "replace its own input" in refused.output
    assert {f: f.read_bytes() for f in src.rglob("*") if f.is_file()} == inputs


def test_one_image_resize_and_keep_size(run, tmp_path):
    Image.new("RGB", (37, 53), (200, 20, 30)).save(tmp_path / "odd.png")
    small = runner.invoke(app, ["translate", "-c", str(run), str(tmp_path / "odd.png"), str(tmp_path / "a"),
                                "--resize", "32"])
    assert small.exit_code == 0, small.output
    assert load_image(tmp_path / "a" / "odd.png").shape == (round(53 * 32 / 37), 32, 3)
    kept = runner.invoke(app, ["translate", "-c", str(run), str(tmp_path / "odd.png"), str(tmp_path / "b"),
                               "--resize", "32", "--keep-size"])
    assert kept.exit_code == 0, kept.output
    assert load_image(tmp_path / "b" / "odd.png").shape == (53, 37, 3)


def test_batches_equal_single_images_and_shards_write_each_file_once(run, tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    src = tmp_path / "in"
    src.mkdir()
    for i in range(5):
        Image.fromarray(rng.integers(0, 255, (32, 48, 3), dtype=np.uint8)).save(src / f"{i}.png")
    one = runner.invoke(app, ["translate", "-c", str(run), str(src), str(tmp_path / "one")])
    four = runner.invoke(app, ["translate", "-c", str(run), str(src), str(tmp_path / "four"), "-b", "4"])
    assert one.exit_code == 0 and four.exit_code == 0, one.output + four.output
    for i in range(5):  # pix2pix normalises each image by itself: batching must not change an output
        a, b = (load_image(tmp_path / d / f"{i}.png").astype(int) for d in ("one", "four"))
        assert np.abs(a - b).max() <= 1
    monkeypatch.setenv("WORLD_SIZE", "2")
    written = []
    for rank in ("0", "1"):
        monkeypatch.setenv("RANK", rank)
        result = runner.invoke(app, ["translate", "-c", str(run), str(src), str(tmp_path / "shards"),
                                     "--json", str(tmp_path / f"r{rank}.json")])
        assert result.exit_code == 0, result.output
        written += json.loads((tmp_path / f"r{rank}.json").read_text())["written"]
    assert len(written) == len(set(written)) == 5


def test_translate_without_checkpoint_uses_the_newest_run_and_says_so(run, tmp_path, monkeypatch):
    src = tmp_path / "in"
    src.mkdir()
    Image.new("RGB", (32, 32), (1, 2, 3)).save(src / "a.png")
    monkeypatch.chdir(run.parent.parent)
    result = runner.invoke(app, ["translate", str(src), str(tmp_path / "o"), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "using the newest run" in result.output and (tmp_path / "o" / "a.png").is_file()
    monkeypatch.chdir(tmp_path)
    none = runner.invoke(app, ["translate", str(src), str(tmp_path / "o2")])
    assert none.exit_code == 2 and "--checkpoint" in none.output


def test_translate_refuses_a_direction_the_method_lacks_and_style_options_without_a_style_encoder(run, tmp_path):
    result = runner.invoke(app, ["translate", "--checkpoint", str(run), str(tmp_path), str(tmp_path / "o"),
                                 "--direction", "BtoA"])
    assert result.exit_code == 2 and "one way only" in result.output
    Image.new("RGB", (32, 32)).save(tmp_path / "ref.png")
    styled = runner.invoke(app, ["translate", "-c", str(run), str(tmp_path), str(tmp_path / "o"), "--style-ref",
                                 str(tmp_path / "ref.png")])
    assert styled.exit_code == 2 and "starganv2" in styled.output


def test_save_masks_writes_attention_masks_and_is_refused_without_attention(run, tmp_path):
    ag = make_run(tmp_path / "ag", "agcyclegan")
    src = tmp_path / "in"
    src.mkdir()
    Image.new("RGB", (30, 22), (10, 120, 30)).save(src / "a.png")
    result = runner.invoke(app, ["translate", "--checkpoint", str(ag), str(src), str(tmp_path / "o"), "--save-masks",
                                 "--direction", "BtoA"])
    assert result.exit_code == 0, result.output
    assert load_image(tmp_path / "o" / "a.png").shape == (22, 30, 3)
    assert load_image(tmp_path / "o" / "a__mask.png").shape == (22, 30, 3)
    refused = runner.invoke(app, ["translate", "--checkpoint", str(run), str(src), str(tmp_path / "p"), "--save-masks"])
    assert refused.exit_code == 2 and "no attention masks" in refused.output


@pytest.mark.parametrize("blend", ["linear", "cosine"])
def test_tiled_output_equals_untiled_away_from_seams_for_a_convolutional_net(blend):
    from i2i_cli.inference import run_array

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 3, 3, padding=1),
                              torch.nn.Tanh())

    class Conv:
        size_multiple, min_size, device = 4, 8, "cpu"

        def __call__(self, x):
            with torch.no_grad():
                return net(x)

    image = np.random.default_rng(1).integers(0, 255, (150, 203, 3), dtype=np.uint8)
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 127.5 - 1
    from i2i_cli.inference import run_tiled

    whole, tiled = Conv()(x), run_tiled(Conv(), x, 64, 16, blend)
    # away from the image border (where whole-image padding differs) the tiles agree with the whole image
    assert (tiled - whole)[..., 2:-2, 2:-2].abs().max() < 1e-3
    as_uint8 = run_array(Conv(), [image], tile=64, overlap=16, blend=blend)[0]
    assert as_uint8.shape == image.shape


# --- issue 20: output names, outputs checked before the work, which run is used ---------------------------


def _noise(seed: int, size: int = 32) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8))


def test_inputs_sharing_a_stem_get_distinct_outputs_and_true_counts(run, tmp_path):
    """a.png and a.webp both mapped to a.png: one was lost (with --overwrite) or the run stopped on its own file."""
    src = tmp_path / "in"
    src.mkdir()
    _noise(1).save(src / "a.png")
    _noise(2).save(src / "a.webp", lossless=True)
    _noise(3).save(src / "b.jpg")
    for flags in ([], ["--overwrite"]):
        out = tmp_path / f"out{len(flags)}"
        result = runner.invoke(app, ["translate", "-c", str(run), str(src), str(out), "--device", "cpu",
                                     "--json", str(tmp_path / f"s{len(flags)}.json"), *flags])
        assert result.exit_code == 0, result.output
        assert _files(out) == ["a.png", "a.webp.png", "b.png"]
        summary = json.loads((tmp_path / f"s{len(flags)}.json").read_text())
        assert len(summary["written"]) == 3 and summary["skipped"] == 0
    # the two outputs are the translations of their own inputs, not one file twice
    assert not np.array_equal(load_image(out / "a.png"), load_image(out / "a.webp.png"))
    again = runner.invoke(app, ["translate", "-c", str(run), str(src), str(out), "--device", "cpu"])
    assert again.exit_code == 0 and "skipped" in again.output


def test_names_that_still_clash_are_refused_with_the_list_before_any_work(run, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    for name in ("a.png", "a.webp", "a.webp.png"):  # a.webp -> a.webp.png, which a.webp.png also writes
        _noise(len(name)).save(src / name)
    result = runner.invoke(app, ["translate", "-c", str(run), str(src), str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    line = result.output.strip().splitlines()[-1]
    assert "a.webp.png" in line and "a.webp and" in line and "written twice" in line
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_names_that_differ_only_in_case_clash_where_the_file_system_ignores_case(run, tmp_path, monkeypatch):
    import i2i_cli.inference.naming as naming

    src = tmp_path / "in"
    src.mkdir()
    _noise(1).save(src / "Cat.png")
    _noise(2).save(src / "cat.jpg")
    # this machine's file system keeps case, so both outputs are written...
    result = runner.invoke(app, ["translate", "-c", str(run), str(src), str(tmp_path / "kept"), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert _files(tmp_path / "kept") == ["Cat.png", "cat.png"]
    # ...where it folds case (macOS, Windows), Cat.png and cat.png would be one file: refused before any work
    monkeypatch.setattr(naming, "folds_case", lambda path: True)
    result = runner.invoke(app, ["translate", "-c", str(run), str(src), str(tmp_path / "folded"), "--device", "cpu"])
    assert result.exit_code == 2, result.output
    line = result.output.strip().splitlines()[-1]
    assert "written twice" in line and "Cat.png" in line and "cat.jpg" in line
    assert not (tmp_path / "folded").exists()


def test_the_case_probe_reads_the_file_system(tmp_path):
    from i2i_cli.fsutil import TEMP_MARKER, folds_case

    (tmp_path / "probe").write_text("x")
    expected = (tmp_path / "PROBE").exists()  # what this file system does with case
    assert folds_case(tmp_path / "not" / "made" / "yet") is expected
    assert not any(p.name.startswith(TEMP_MARKER) for p in tmp_path.iterdir())  # the probe leaves nothing


def test_style_references_in_domain_folders_sharing_file_names_give_one_output_each(tmp_path):
    """AFHQ's val/<domain>/0000.png: every output was NAME__0000.png, 3 of 6 written, 3 'skipped' by the run."""
    run = make_run(tmp_path / "sg", "starganv2")
    refs, src = tmp_path / "val", tmp_path / "src"
    for k, domain in enumerate(("cat", "dog", "wild")):
        (refs / domain).mkdir(parents=True)
        _noise(10 + k).save(refs / domain / "0000.png")
    src.mkdir()
    _noise(20).save(src / "x.png")
    _noise(21).save(src / "y.png")
    result = runner.invoke(app, ["translate", "-c", str(run), str(src), str(tmp_path / "out"), "--style-ref",
                                 str(refs), "--device", "cpu", "--json", str(tmp_path / "s.json")])
    assert result.exit_code == 0, result.output
    assert _files(tmp_path / "out") == [f"{n}__{d}-0000.png" for n in ("x", "y") for d in ("cat", "dog", "wild")]
    summary = json.loads((tmp_path / "s.json").read_text())
    assert len(summary["written"]) == 6 and summary["skipped"] == 0


@pytest.mark.parametrize("case", ["file", "under_file", "json_dir"])
def test_translate_refuses_unwritable_outputs_before_translating(run, tmp_path, case):
    src = tmp_path / "in"
    src.mkdir()
    _noise(1).save(src / "a.png")
    blocker = tmp_path / "taken.txt"
    blocker.write_text("mine")
    out, extra = {"file": (blocker, []), "under_file": (blocker / "sub", []),
                  "json_dir": (tmp_path / "out", ["--json", str(tmp_path)])}[case]
    result = runner.invoke(app, ["translate", "-c", str(run), str(src), str(out), *extra])
    assert result.exit_code == 2, result.output
    assert len(result.output.strip().splitlines()) == 1 and "(step 1" not in result.output  # before the model loads
    assert blocker.read_text() == "mine" and not (tmp_path / "out").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only folder; the probe is then right to pass")
def test_translate_into_a_read_only_folder_is_refused_before_translating(run, tmp_path):
    src, locked = tmp_path / "in", tmp_path / "locked"
    src.mkdir()
    locked.mkdir()
    _noise(1).save(src / "a.png")
    locked.chmod(0o555)
    try:
        result = runner.invoke(app, ["translate", "-c", str(run), str(src), str(locked / "out")])
    finally:
        locked.chmod(0o755)
    assert result.exit_code == 2 and "cannot write" in result.output


def test_a_tile_that_does_not_fit_the_network_is_refused_before_any_image(run, tmp_path):
    """--tile 500 on a network needing multiples of 32 was accepted until an image was larger than 500."""
    src = tmp_path / "in"
    src.mkdir()
    _noise(1).save(src / "small.png")  # smaller than the tile: it used to be translated without a word
    result = runner.invoke(app, ["translate", "-c", str(run), str(src), str(tmp_path / "out"), "--tile", "500"])
    assert result.exit_code == 2, result.output
    assert "--tile 500" in result.output and "--tile 512" in result.output
    assert not (tmp_path / "out" / "small.png").exists()


def test_checkpoint_that_is_a_file_names_the_file_and_says_what_a_checkpoint_is(tmp_path):
    _noise(1).save(tmp_path / "single.png")
    result = runner.invoke(app, ["translate", "-c", str(tmp_path / "single.png"), str(tmp_path / "single.png"),
                                 str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "single.png: a file, not an i2i checkpoint" in result.output and "config.json" in result.output
    assert "'.'" not in result.output


def test_without_checkpoint_a_run_still_training_is_not_picked(run, tmp_path, monkeypatch):
    import shutil
    import time

    from i2i_cli.engine.checkpoint import read_run_config, write_run_config

    runs = tmp_path / "runs"
    finished = make_run(runs / "done", "pix2pix")
    time.sleep(0.05)
    training = make_run(runs / "busy", "pix2pix")  # newer, but at step 1 of 100
    config = read_run_config(training)
    config.train["total_steps"] = 100
    write_run_config(training, config)
    src = tmp_path / "in"
    src.mkdir()
    _noise(1).save(src / "a.png")
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["translate", str(src), str(tmp_path / "o"), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert f"newest finished run, {Path('runs') / 'done'}" in result.output and "step 1 of 100" in result.output
    shutil.rmtree(finished)
    alone = runner.invoke(app, ["translate", str(src), str(tmp_path / "o2")])
    assert alone.exit_code == 2 and "step 1 of 100" in alone.output and "--checkpoint" in alone.output


def test_a_run_trained_btoa_exports_saying_btoa_and_translates_from_its_onnx(tmp_path):
    from i2i_cli.export import read_metadata

    run = make_run(tmp_path / "b2a", "pix2pix", direction="BtoA")
    result = runner.invoke(app, ["export", "-c", str(run), "--out", str(tmp_path / "m.onnx")])
    assert result.exit_code == 0, result.output
    meta = read_metadata(tmp_path / "m.onnx")
    assert meta["direction"] == "BtoA" and meta["trained_direction"] == "BtoA"
    assert "BtoA" in result.output and "AtoB" not in result.output
    src = tmp_path / "in"
    src.mkdir()
    _noise(1).save(src / "a.png")
    translated = runner.invoke(app, ["translate", "-c", str(tmp_path / "m.onnx"), str(src), str(tmp_path / "o")])
    assert translated.exit_code == 0, translated.output
    reverse = runner.invoke(app, ["translate", "-c", str(tmp_path / "m.onnx"), str(src), str(tmp_path / "o2"),
                                  "--direction", "BtoA"])
    assert reverse.exit_code == 2 and "translates BtoA of its dataset" in reverse.output
