"""Trial round 3 (issue 25): each class of problem closed by one rule, tested over the cases the rule covers."""

from __future__ import annotations

import hashlib
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
