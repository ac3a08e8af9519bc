"""Dataset layouts, `i2i data synth` / `i2i data check`, seeded augmentation."""

from __future__ import annotations

import json

import torch
from typer.testing import CliRunner

from i2i_cli.data.datasets import Augment, StepSampler
from i2i_cli.data.layouts import detect_layout
from i2i_cli.main import app

runner = CliRunner()


def test_synth_writes_each_standard_layout(tmp_path):
    for layout, expected in [("aligned", {"train", "test"}), ("unaligned", {"trainA", "trainB", "testA", "testB"}),
                             ("domains", {"train", "val"})]:
        out = tmp_path / layout
        result = runner.invoke(app, ["data", "synth", "scenes", str(out), "--layout", layout, "--size", "32",
                                     "--n-train", "3", "--n-test", "2"])
        assert result.exit_code == 0, result.output
        assert {p.name for p in out.iterdir()} == expected
        assert detect_layout(out).kind == layout
    assert sorted(p.name for p in (tmp_path / "domains" / "train").iterdir()) == ["day", "dusk", "night"]
    refused = runner.invoke(app, ["data", "synth", "scenes", str(tmp_path / "aligned")])
    assert refused.exit_code == 2 and "--overwrite" in refused.output


def test_check_reports_layout_counts_and_every_unreadable_file(tmp_path):
    out = tmp_path / "d"
    runner.invoke(app, ["data", "synth", "scenes", str(out), "--layout", "unaligned", "--size", "32",
                        "--n-train", "3", "--n-test", "1"])
    (out / "trainA" / "zero.png").write_bytes(b"")
    (out / "testB" / "text.jpg").write_text("nope")
    result = runner.invoke(app, ["data", "check", str(out), "--json", str(tmp_path / "r.json")])
    assert result.exit_code == 1
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["layout"] == "unaligned"
    assert report["counts"]["train"] == {"A": 4, "B": 3}
    assert sorted(b["file"].rsplit("/", 1)[-1] for b in report["bad"]) == ["text.jpg", "zero.png"]


def test_domains_need_two_folders(tmp_path):
    (tmp_path / "train" / "cat").mkdir(parents=True)
    from PIL import Image

    Image.new("RGB", (8, 8)).save(tmp_path / "train" / "cat" / "a.png")
    (tmp_path / "train" / "dog").mkdir()
    result = runner.invoke(app, ["data", "check", str(tmp_path)])
    assert result.exit_code == 2 and "two or more domain folders" in result.output


def test_augmentation_is_a_function_of_the_seed_and_pairs_share_the_crop(datasets):
    layout = detect_layout(datasets["aligned"])
    ds = layout.training_dataset("aligned", "train", Augment(size=24, load_size=32, flip=True))
    a1, a2 = ds[(0, 5)], ds[(0, 5)]
    assert torch.equal(a1["A"], a2["A"]) and a1["A"].shape == (3, 24, 24)
    assert any(not torch.equal(ds[(0, s)]["A"], a1["A"]) for s in range(6, 12))
    # the synthetic label map and photo share structure: a shared crop keeps their edges aligned
    edges_a = (a1["A"].float().diff(dim=2).abs().sum(0) > 30).float()
    edges_b = (a1["B"].float().diff(dim=2).abs().sum(0) > 30).float()
    assert (edges_a * edges_b).sum() > 0.3 * edges_a.sum()


def test_sampler_gives_each_rank_its_share_of_the_same_global_batch():
    whole = StepSampler(10, 4, seed=3, start_step=0, total_steps=5)
    ranks = [StepSampler(10, 4, seed=3, start_step=0, total_steps=5, rank=r, world_size=2) for r in (0, 1)]
    for step in range(5):
        merged = sorted(ranks[0].batch_for_step(step) + ranks[1].batch_for_step(step))
        assert merged == sorted(whole.batch_for_step(step))
    resumed = StepSampler(10, 4, seed=3, start_step=3, total_steps=5)
    assert list(resumed) == [whole.batch_for_step(3), whole.batch_for_step(4)]


def test_gpu_data_path_gives_the_same_batches_as_the_cpu_path(datasets):
    from i2i_cli.data.datasets import collate
    from i2i_cli.data.device_cache import DeviceBatches

    layout = detect_layout(datasets["unaligned"])
    spec = Augment(size=24, load_size=32, flip=True)
    dataset = layout.training_dataset("unaligned", "train", spec)
    sampler = StepSampler(len(dataset), 3, seed=4, start_step=0, total_steps=4)
    device_batches = list(DeviceBatches(dataset, sampler, torch.device("cpu"), threads=2))
    for step, batch in enumerate(device_batches):
        expected = collate([dataset[key] for key in sampler.batch_for_step(step)])
        for field in ("A", "B"):
            assert torch.equal(batch[field], expected[field])
