"""`i2i reproduce`: every shipped recipe is well-formed, and a recipe runs end to end at a tiny scale on synthetic
data served by the loopback download server (download, train with periodic evaluation, best kept, table)."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from i2i_cli.errors import ConfigError
from i2i_cli.main import app
from i2i_cli.reproduce import check_recipe, load_recipe, recipe_names
from tests.http_server import serve
from tests.test_evaluation import _stand_in_dir

runner = CliRunner()


@pytest.mark.parametrize("name", recipe_names())
def test_every_shipped_recipe_names_known_things_and_cites_its_numbers(name):
    recipe = load_recipe(name)
    check_recipe(recipe)  # dataset, methods, options, metrics and value keys exist; each number has a source
    assert recipe.rows and recipe.paper and recipe.code.startswith("https://") and recipe.verification
    assert recipe.gpu_hours > 0 and recipe.gpu_hours_note
    for row in recipe.rows:
        for number in row.published.values():
            assert "README" in number.source or "Table" in number.source or "page" in number.source


def test_the_recipes_the_issue_asks_for_are_shipped():
    assert {"cut_horse2zebra", "cyclegan_horse2zebra", "sesim_horse2zebra", "sesim_ablation_horse2zebra",
            "pix2pix_cityscapes_losses", "pix2pix_cityscapes_generators", "pix2pix_cityscapes_fields",
            "cyclegan_cityscapes", "starganv2_afhq", "starganv2_celeba_hq"} <= set(recipe_names())
    afhq = load_recipe("starganv2_afhq").rows[0].published
    assert afhq["fid_latent_mean"].value == 16.18 and afhq["lpips_reference_mean"].spread == 0.0002


def test_a_wrong_recipe_is_refused_naming_the_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(_recipe_text(options='{ nope = 1 }'))
    with pytest.raises(ConfigError, match="nope"):
        check_recipe(load_recipe(bad))
    bad.write_text("title = ")
    with pytest.raises(ConfigError, match=f"{bad}: not a readable TOML recipe"):
        load_recipe(bad)
    result = runner.invoke(app, ["reproduce", "no_such_recipe"])
    assert result.exit_code == 2 and "unknown recipe 'no_such_recipe'" in result.output


def _recipe_text(options: str = '{ ngf = 8, ndf = 8, size = 32, load_size = 36, batch_size = 2 }') -> str:
    return f"""
title = "tiny pix2pix"
paper = "test"
code = "https://example.invalid"
dataset = "facades"
gpu_hours = 0.01
gpu_hours_note = "tiny"
verification = "a test recipe"

[protocol]
metrics = ["fid"]
keys = ["fid", "lpips"]
select = "best"
best_key = "fid"
eval_every = "100"

[[rows]]
name = "tiny"
method = "pix2pix"
steps = 200
options = {options}
published.fid = {{ value = 100.0, spread = 10.0, source = "Table 0 of the test" }}
"""


def _tar_gz(folder: Path, name: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tf:
        tf.add(folder, arcname=name)
    return buffer.getvalue()


def test_recipe_end_to_end_at_a_tiny_scale(datasets, tmp_path, tmp_path_factory, monkeypatch):
    import torchvision

    from i2i_cli.evaluation import fid_kid

    features = []
    real_features = fid_kid.folder_features

    def counting(folder, *args, **kwargs):
        features.append(Path(folder).name)
        return real_features(folder, *args, **kwargs)

    monkeypatch.setattr(fid_kid, "folder_features", counting)

    weights = _stand_in_dir(tmp_path_factory, 64)
    torch.manual_seed(0)
    alex = torchvision.models.alexnet(weights=None).features.state_dict()
    torch.save({f"features.{k}": v for k, v in alex.items()}, weights / "alexnet-owt-7be5be79.pth")
    recipe = tmp_path / "tiny.toml"
    recipe.write_text(_recipe_text())
    out = tmp_path / "out"
    plan = runner.invoke(app, ["reproduce", str(recipe), "--scale", "0.01", "--dry-run", "--json",
                               str(tmp_path / "plan.json")])
    assert plan.exit_code == 0, plan.output
    assert json.loads((tmp_path / "plan.json").read_text())["rows"][0]["schedule"] == "2 steps"
    with serve({"/facades.tar.gz": _tar_gz(datasets["aligned"], "facades")}) as (base, _):
        result = runner.invoke(app, ["reproduce", str(recipe), "--out", str(out), "--scale", "0.01", "--device",
                                     "cpu", "--data-url", f"{base}/facades.tar.gz", "--weights-dir", str(weights),
                                     "--json", str(tmp_path / "r.json")])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "r.json").read_text())
    run = out / "tiny" / "seed_0"
    assert (out / "data" / "facades" / "train").is_dir()  # downloaded and laid out
    evaluated = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()
                 if "eval" in json.loads(line)]
    assert evaluated == [1, 2]  # --eval-every 100 at scale 0.01
    best = json.loads((run / "best.json").read_text())
    assert (run / "checkpoints" / "best" / "weights.safetensors").is_file()
    fid = next(r for r in summary["rows"] if r["key"] == "fid")
    assert fid["published"] == 100.0 and fid["reproduced"] == pytest.approx(best["value"])
    assert fid["difference_in_spreads"] == pytest.approx((best["value"] - 100.0) / 10.0)
    assert "| tiny | fid | 100 ± 10 |" in (out / "results.md").read_text()
    # the real set's Inception features once for the whole reproduction (two evaluations and the final scoring)
    assert features.count("real") == 1 and features.count("fake") == 3
    translated = runner.invoke(app, ["translate", "--checkpoint", f"{run}@best", str(datasets["aligned"] / "test"),
                                     str(tmp_path / "translated"), "--device", "cpu"])
    assert translated.exit_code == 0, translated.output
