"""FID/KID equal clean-fid's own numbers; LPIPS equals the lpips package's; FCN-score formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from typer.testing import CliRunner

from i2i_cli.evaluation import fcn_score, fid_kid
from i2i_cli.evaluation.lpips_metric import build_lpips
from i2i_cli.main import app


class _Layers(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 64, 5, stride=4)
        self.proj = torch.nn.Conv2d(64, 2048, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(torch.relu(self.proj(torch.relu(self.conv(x)))), 1)


class _StandInInception(torch.nn.Module):
    """The interface of clean-fid's TorchScript Inception with seeded random weights."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = _Layers()

    def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        return self.layers((x - 128) / 128)


@pytest.fixture(scope="module")
def inception_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("inception")
    torch.manual_seed(0)
    torch.jit.script(_StandInInception()).save(str(folder / "inception-2015-12-05.pt"))
    return folder


def _folder(path, seed: int, n: int = 12, tint: int = 0):
    path.mkdir()
    rng = np.random.default_rng(seed)
    for i in range(n):
        arr = rng.integers(0, 200, (48, 40, 3), dtype=np.uint8)
        arr[..., 0] = np.clip(arr[..., 0].astype(int) + tint, 0, 255)
        Image.fromarray(arr).save(path / f"{i:03d}.png")
    return path


def test_fid_and_kid_equal_clean_fid_on_the_same_network(inception_dir, tmp_path, monkeypatch):
    from cleanfid import fid as cleanfid

    monkeypatch.setenv("I2I_WEIGHTS_DIR", str(inception_dir))
    real, fake = _folder(tmp_path / "real", 1), _folder(tmp_path / "fake", 2, tint=50)
    model, weights = fid_kid.inception("clean")
    assert weights.source == "override" and not weights.verified
    f_real, _ = fid_kid.folder_features(real, model)
    f_fake, _ = fid_kid.folder_features(fake, model)
    ours = fid_kid.fid_from_features(f_real, f_fake)
    theirs = cleanfid.compute_fid(str(real), str(fake), mode="clean", custom_feat_extractor=model,
                                  device=torch.device("cpu"), num_workers=0, use_dataparallel=False, verbose=False)
    assert math.isclose(ours, theirs, rel_tol=1e-6)
    kid_mean, kid_std, m = fid_kid.kid_from_features(f_real, f_fake, subsets=20, seed=3)
    np.random.seed(3)
    assert math.isclose(kid_mean, cleanfid.kernel_distance(f_real, f_fake, num_subsets=20), rel_tol=1e-6)
    assert m == 12 and kid_std > 0
    assert fid_kid.fid_from_features(f_real, f_real) < 1e-3 * ours


def test_kid_is_unbiased_for_two_samples_of_one_distribution():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(300, 2048)), rng.normal(size=(300, 2048))
    shifted = rng.normal(loc=0.3, size=(300, 2048))
    same, _, _ = fid_kid.kid_from_features(a, b, subsets=10, subset_size=100)
    different, _, _ = fid_kid.kid_from_features(a, shifted, subsets=10, subset_size=100)
    assert abs(same) < 0.05 * different


def test_eval_command_writes_metrics_and_protocol(inception_dir, tmp_path):
    import json

    real, fake = _folder(tmp_path / "real", 1), _folder(tmp_path / "fake", 2, tint=50)
    (fake / "feats.npy").write_bytes(b"stray file that clean-fid would try to read")
    result = CliRunner().invoke(app, ["eval", "--real", str(real), "--fake", str(fake), "--weights-dir",
                                      str(inception_dir), "--json", str(tmp_path / "m.json"), "--kid-subsets", "5",
                                      "--metrics", "kid"])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "m.json").read_text())
    assert report["fid"] is None and report["kid_mean"] > 0 and report["lpips"] is None
    protocol = report["protocol"]
    assert protocol["mode"] == "clean" and protocol["n_real"] == protocol["n_fake"] == 12
    assert protocol["kid"]["seed"] == 0 and protocol["weights"]["inception"]["verified"] is False
    assert "clean-fid" in protocol["versions"]


def test_lpips_equals_the_lpips_package_on_the_same_backbone(tmp_path, monkeypatch):
    import lpips

    torch.manual_seed(0)
    reference = lpips.LPIPS(net="alex", pnet_rand=True, verbose=False).eval()
    state = {"features." + k.split(".", 1)[1]: v for k, v in reference.net.state_dict().items()}
    torch.save(state, tmp_path / "alexnet-owt-7be5be79.pth")
    monkeypatch.setenv("I2I_WEIGHTS_DIR", str(tmp_path))
    ours, weights = build_lpips("alex")
    a, b = torch.rand(2, 3, 64, 64) * 2 - 1, torch.rand(2, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        expected, got = reference(a, b), ours(a, b)
    assert torch.allclose(got, expected, rtol=1e-6, atol=1e-7)
    assert weights.source == "override"


def test_fcn_score_formulas_on_hand_made_confusion_matrices():
    matrix = np.array([[5, 1, 0], [2, 2, 0], [0, 0, 0]])  # class 2 absent from labels and predictions
    s = fcn_score.scores(matrix)
    assert math.isclose(s["pixel_accuracy"], 7 / 10)
    assert math.isclose(s["class_accuracy"], np.mean([5 / 6, 2 / 4]))
    assert math.isclose(s["mean_iou"], np.mean([5 / (6 + 7 - 5), 2 / (4 + 3 - 2)]))
    labels = np.array([[0, 1], [19, 255]])
    preds = np.array([[0, 0], [1, 1]])
    assert fcn_score.confusion(labels, preds, 19).sum() == 2  # labels >= n_classes ignored


def test_eval_checkpoint_translates_the_test_split_and_scores_it(inception_dir, datasets, tmp_path, monkeypatch):
    import json

    import lpips

    from i2i_cli.engine.trainer import TrainOptions, train
    from tests.conftest import tiny_config

    torch.manual_seed(0)
    reference = lpips.LPIPS(net="alex", pnet_rand=True, verbose=False)
    torch.save({"features." + k.split(".", 1)[1]: v for k, v in reference.net.state_dict().items()},
               inception_dir / "alexnet-owt-7be5be79.pth")
    train("pix2pix", tiny_config("pix2pix"), TrainOptions(data=datasets["aligned"], out=tmp_path / "run", steps=1,
                                                          device="cpu"))
    result = CliRunner().invoke(app, ["eval", "--checkpoint", str(tmp_path / "run"), "--metrics", "kid",
                                      "--kid-subsets", "3", "--weights-dir", str(inception_dir), "--json",
                                      str(tmp_path / "e.json")])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "e.json").read_text())
    assert report["kid_mean"] is not None and report["lpips"] is not None  # paired data: LPIPS to ground truth too
    assert report["protocol"]["n_fake"] == 4 and report["protocol"]["step"] == 1
    assert len(list((tmp_path / "run" / "eval" / "step_00000001" / "fake").glob("*.png"))) == 4
