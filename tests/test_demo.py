"""`i2i demo`: the whole loop, shrunk to seconds."""

from __future__ import annotations

from typer.testing import CliRunner

from i2i_cli.demo import run_demo
from i2i_cli.main import app


def test_demo_writes_data_run_outputs_and_a_report(tmp_path):
    result = run_demo(tmp_path / "demo", size=32, steps=3, n_train=4, n_test=3, batch_size=2, device="cpu")
    assert result.test_images == 3
    assert sorted(p.name for p in (tmp_path / "demo" / "outputs").iterdir()) == ["00000.png", "00001.png", "00002.png"]
    page = result.report.read_text()
    assert page.count("<tr><td>") == 3 and "<svg" in page
    assert (result.run / "config.json").is_file()
    assert list(result.timings) == ["synthesis", "training", "translation", "report"]  # where the time went
    assert all(t >= 0 for t in result.timings.values())
    assert abs(sum(result.timings.values()) - result.seconds) < 1.0


def test_demo_refuses_to_overwrite_an_existing_folder(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "mine.txt").write_text("keep")
    result = CliRunner().invoke(app, ["demo", "--out", str(tmp_path / "d")])
    assert result.exit_code == 2 and "--overwrite" in result.output
    assert (tmp_path / "d" / "mine.txt").read_text() == "keep"
