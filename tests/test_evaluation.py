"""FID/KID equal clean-fid's own numbers; LPIPS equals the lpips package's; FCN-score formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from typer.testing import CliRunner

from i2i_cli.data import labels as label_maps
from i2i_cli.errors import ConfigError
from i2i_cli.evaluation import fcn_score, fid_kid
from i2i_cli.evaluation.lpips_metric import build_lpips
from i2i_cli.main import app


class _Layers(torch.nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 16, 8, stride=8)
        self.proj = torch.nn.Conv2d(16, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(torch.relu(self.proj(torch.relu(self.conv(x)))), 1)


class _StandInInception(torch.nn.Module):
    """The interface of clean-fid's TorchScript Inception with seeded random weights."""

    def __init__(self, dim: int = 2048) -> None:
        super().__init__()
        self.layers = _Layers(dim)

    def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        return self.layers((x - 128) / 128)


def _stand_in_dir(tmp_path_factory, dim: int):
    folder = tmp_path_factory.mktemp(f"inception{dim}")
    torch.manual_seed(0)
    torch.jit.script(_StandInInception(dim)).save(str(folder / "inception-2015-12-05.pt"))
    return folder


@pytest.fixture(scope="module")
def inception_dir(tmp_path_factory):
    """2048-d features like the real network (FID on them costs one 2048x2048 sqrtm, ~40 s on one core)."""
    return _stand_in_dir(tmp_path_factory, 2048)


@pytest.fixture(scope="module")
def small_inception_dir(tmp_path_factory):
    """The same interface with 64-d features, so FID's sqrtm is instant in the fast tests."""
    return _stand_in_dir(tmp_path_factory, 64)


@pytest.fixture(scope="module")
def eight_feature_inception_dir(tmp_path_factory):
    """8-d features: fewer than the 12 images of a test folder, so the covariances are full rank and every
    scipy's sqrtm (clean-fid's reference) is accurate; on singular ones scipy < 1.16 differs by ~1e-2."""
    return _stand_in_dir(tmp_path_factory, 8)


def _folder(path, seed: int, n: int = 12, tint: int = 0):
    path.mkdir()
    rng = np.random.default_rng(seed)
    for i in range(n):
        arr = rng.integers(0, 200, (48, 40, 3), dtype=np.uint8)
        arr[..., 0] = np.clip(arr[..., 0].astype(int) + tint, 0, 255)
        Image.fromarray(arr).save(path / f"{i:03d}.png")
    return path


def _clean_fid_kwargs():
    return {"device": torch.device("cpu"), "num_workers": 0, "verbose": False}


@pytest.mark.parametrize("mode", ["clean", "legacy_tensorflow"])
def test_features_and_fid_equal_clean_fid_on_the_same_network(eight_feature_inception_dir, tmp_path, monkeypatch,
                                                              mode):
    from cleanfid import fid as cleanfid

    monkeypatch.setenv("I2I_WEIGHTS_DIR", str(eight_feature_inception_dir))
    real, fake = _folder(tmp_path / "real", 1), _folder(tmp_path / "fake", 2, tint=50)
    model, weights = fid_kid.inception(mode)
    assert weights.source == "override" and not weights.verified  # no published hash for this file
    f_real, bad = fid_kid.folder_features(real, model, mode, batch_size=5, threads=2)
    f_fake, _ = fid_kid.folder_features(fake, model, mode, batch_size=5, threads=2)
    theirs = cleanfid.get_folder_features(str(real), model, mode=mode, batch_size=5, **_clean_fid_kwargs())
    assert not bad and np.allclose(f_real, theirs, rtol=1e-6, atol=1e-7)  # clean-fid's exact preprocessing
    ours = fid_kid.fid_from_features(f_real, f_fake)
    expected = cleanfid.compute_fid(str(real), str(fake), mode=mode, custom_feat_extractor=model,
                                    use_dataparallel=False, **_clean_fid_kwargs())
    assert math.isclose(ours, expected, rel_tol=1e-6)
    assert fid_kid.fid_from_features(f_real, f_real) < 1e-6 * ours  # a folder with itself


def test_kid_equals_clean_fid_with_its_rng_seeded_like_ours(inception_dir, tmp_path, monkeypatch):
    from cleanfid import fid as cleanfid

    monkeypatch.setenv("I2I_WEIGHTS_DIR", str(inception_dir))
    real, fake = _folder(tmp_path / "real", 1), _folder(tmp_path / "fake", 2, tint=50)
    model, _ = fid_kid.inception("clean")
    f_real, _ = fid_kid.folder_features(real, model)
    f_fake, _ = fid_kid.folder_features(fake, model)
    assert f_real.shape == (12, 2048)
    kid_mean, kid_std, m = fid_kid.kid_from_features(f_real, f_fake, subsets=20, seed=3)
    np.random.seed(3)
    assert math.isclose(kid_mean, cleanfid.kernel_distance(f_real, f_fake, num_subsets=20), rel_tol=1e-6)
    assert m == 12 and kid_std > 0
    assert fid_kid.kid_from_features(f_real, f_fake, subsets=20, seed=3)[0] == kid_mean  # seeded: repeatable


@pytest.mark.slow
def test_fid_equals_clean_fid_compute_fid_on_2048_features(inception_dir, tmp_path, monkeypatch):
    from cleanfid import fid as cleanfid

    monkeypatch.setenv("I2I_WEIGHTS_DIR", str(inception_dir))
    real, fake = _folder(tmp_path / "real", 1), _folder(tmp_path / "fake", 2, tint=50)
    model, _ = fid_kid.inception("clean")
    ours = fid_kid.fid_from_features(fid_kid.folder_features(real, model)[0], fid_kid.folder_features(fake, model)[0])
    theirs = cleanfid.compute_fid(str(real), str(fake), mode="clean", custom_feat_extractor=model,
                                  use_dataparallel=False, **_clean_fid_kwargs())
    assert math.isclose(ours, theirs, rel_tol=1e-6)


@pytest.mark.slow
def test_legacy_pytorch_loads_the_registry_file_into_pytorch_fids_network(tmp_path, monkeypatch):
    from cleanfid import inception_pytorch as ip

    torch.manual_seed(0)
    net = ip._inception_v3(num_classes=1008, aux_logits=False, pretrained=False)
    for name, block in [("Mixed_5b", ip.FIDInceptionA(192, 32)), ("Mixed_5c", ip.FIDInceptionA(256, 64)),
                        ("Mixed_5d", ip.FIDInceptionA(288, 64)), ("Mixed_6b", ip.FIDInceptionC(768, 128)),
                        ("Mixed_6c", ip.FIDInceptionC(768, 160)), ("Mixed_6d", ip.FIDInceptionC(768, 160)),
                        ("Mixed_6e", ip.FIDInceptionC(768, 192)), ("Mixed_7b", ip.FIDInceptionE_1(1280)),
                        ("Mixed_7c", ip.FIDInceptionE_2(2048))]:
        setattr(net, name, block)
    torch.save(net.state_dict(), tmp_path / "pt_inception-2015-12-05-6726825d.pth")
    monkeypatch.setenv("I2I_WEIGHTS_DIR", str(tmp_path))
    features, weights = fid_kid.inception("legacy_pytorch")
    assert weights.source == "override" and not weights.verified and "differs" in weights.note
    x = torch.rand(2, 3, 299, 299) * 255
    with torch.no_grad():  # pytorch-fid: x / 255 -> 2x - 1 -> Inception up to its average pool
        out = features(x)
        expected = torch.flatten(torch.nn.Sequential(*list(net.eval().children())[:-2])(x / 255 * 2 - 1), 1)
    assert out.shape == (2, 2048) and torch.allclose(out, expected, rtol=1e-4, atol=1e-5)


def test_kid_is_unbiased_for_two_samples_of_one_distribution():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(300, 2048)), rng.normal(size=(300, 2048))
    shifted = rng.normal(loc=0.3, size=(300, 2048))
    same, _, _ = fid_kid.kid_from_features(a, b, subsets=10, subset_size=100)
    different, _, _ = fid_kid.kid_from_features(a, shifted, subsets=10, subset_size=100)
    assert abs(same) < 0.05 * different


def test_eval_command_writes_metrics_and_protocol(small_inception_dir, tmp_path):
    import json

    real, fake = _folder(tmp_path / "real", 1), _folder(tmp_path / "fake", 2, tint=50)
    (fake / "feats.npy").write_bytes(b"stray file that clean-fid would try to read")
    (fake / "broken.png").write_bytes(b"not a png")
    result = CliRunner().invoke(app, ["eval", "--real", str(real), "--fake", str(fake), "--weights-dir",
                                      str(small_inception_dir), "--json", str(tmp_path / "m.json"),
                                      "--kid-subsets", "5", "--kid-subset-size", "8", "--metrics", "fid,kid"])
    assert result.exit_code == 1, result.output  # issue 25 item 10: a skipped file exits 1, as translate / data check
    report = json.loads((tmp_path / "m.json").read_text())
    assert report["fid"] > 0 and report["kid_mean"] > 0 and report["kid_std"] > 0 and report["lpips"] is None
    protocol = report["protocol"]
    assert protocol["mode"] == "clean" and protocol["n_real"] == protocol["n_fake"] == 12  # .npy ignored
    assert "bicubic" in protocol["resize"] and protocol["kid"]["seed"] == 0 and protocol["kid"]["subset_size"] == 8
    inception = protocol["weights"]["inception"]
    assert inception["file"] == "inception-2015-12-05.pt" and inception["verified"] is False
    assert len(inception["sha256"]) == 64 and "clean-fid" in protocol["versions"]
    assert [b["file"].endswith("broken.png") for b in report["bad_files"]] == [True]  # reported, run went on


def test_eval_names_a_folder_too_small_for_fid_before_loading_any_network(tmp_path):
    one = tmp_path / "one"
    one.mkdir()
    Image.fromarray(np.zeros((16, 16, 3), dtype=np.uint8)).save(one / "0.png")
    result = CliRunner().invoke(app, ["eval", "--real", str(one), "--fake", str(one)])  # no Inception file here
    assert result.exit_code == 2 and f"--real {one}: 1 image(s); FID and KID need at least 2" in result.output
    result = CliRunner().invoke(app, ["eval", "--real", str(tmp_path / "missing"), "--fake", str(one)])
    assert result.exit_code == 2 and "missing: no such folder" in result.output


@pytest.fixture(scope="module")
def alex(tmp_path_factory):
    """(folder with a random AlexNet under torchvision's file name, the lpips package's model using it)."""
    import lpips

    folder = tmp_path_factory.mktemp("alex")
    torch.manual_seed(0)
    reference = lpips.LPIPS(net="alex", pnet_rand=True, verbose=False).eval()
    state = {"features." + k.split(".", 1)[1]: v for k, v in reference.net.state_dict().items()}
    torch.save(state, folder / "alexnet-owt-7be5be79.pth")
    return folder, reference


def test_lpips_equals_the_lpips_package_on_the_same_backbone(alex, monkeypatch):
    folder, reference = alex
    monkeypatch.setenv("I2I_WEIGHTS_DIR", str(folder))
    ours, weights = build_lpips("alex")
    a, b = torch.rand(2, 3, 64, 64) * 2 - 1, torch.rand(2, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        expected, got = reference(a, b), ours(a, b)
    assert torch.allclose(got, expected, rtol=1e-6, atol=1e-7)
    assert weights.source == "override"


def test_fcn_score_formulas_on_hand_made_confusion_matrices():
    matrix = np.array([[5, 1, 0], [2, 2, 0], [0, 0, 0]])  # class 2 absent from labels and predictions
    drn = fcn_score.scores(matrix, "drn")  # fyu/drn's nanmean (CUT / F-LSeSim): the absent class is skipped
    assert math.isclose(drn["pixel_accuracy"], 7 / 10)
    assert math.isclose(drn["class_accuracy"], np.mean([5 / 6, 2 / 4]))
    assert math.isclose(drn["mean_iou"], np.mean([5 / (6 + 7 - 5), 2 / (4 + 3 - 2)]))
    pix2pix = fcn_score.scores(matrix)  # the default: pix2pix's get_scores, the absent class counts 0
    assert math.isclose(pix2pix["pixel_accuracy"], 7 / 10)
    assert math.isclose(pix2pix["class_accuracy"], np.mean([5 / 6, 2 / 4, 0.0]))
    assert math.isclose(pix2pix["mean_iou"], np.mean([5 / (6 + 7 - 5), 2 / (4 + 3 - 2), 0.0]))
    assert fcn_score.absent_classes(matrix) == [2]
    predicted_only = np.array([[3, 1], [0, 0]])  # class 1 never in the labels but predicted: IoU 0, acc NaN
    s = fcn_score.scores(predicted_only, "drn")
    assert math.isclose(s["class_accuracy"], 3 / 4) and math.isclose(s["mean_iou"], np.mean([3 / 4, 0.0]))
    s = fcn_score.scores(predicted_only, "pix2pix")
    assert math.isclose(s["class_accuracy"], np.mean([3 / 4, 0.0])) and math.isclose(s["mean_iou"], 3 / 8)
    with pytest.raises(ConfigError, match="--convention nanmean: choose pix2pix, drn"):
        fcn_score.scores(matrix, "nanmean")


def test_eval_fcn_names_its_convention_lists_absent_classes_and_warns(tmp_path):
    """5-class labels scored with the default --classes 19: pix2pix's means count the 14 absent classes as 0."""
    import json

    seg = tmp_path / "seg.pt"
    torch.jit.script(_OracleSegmenter()).save(str(seg))
    labels, fake = tmp_path / "labels", tmp_path / "fake"
    labels.mkdir()
    fake.mkdir()
    rng = np.random.default_rng(3)
    expected = np.zeros((19, 20), dtype=np.int64)
    for i in range(2):
        ids = rng.integers(0, 5, (8, 8))
        wrong = ids.copy()
        wrong[:3] = (wrong[:3] + 1) % 5
        Image.fromarray(label_maps.cityscapes_color_map(ids)).save(labels / f"{i}.png")
        Image.fromarray(label_maps.cityscapes_color_map(wrong)).save(fake / f"{i}.png")
        expected += fcn_score.confusion(ids, wrong, 19)
    reports = {}
    for convention in ("pix2pix", "drn"):
        result = CliRunner().invoke(app, ["eval", "fcn", "--fake", str(fake), "--labels", str(labels), "--segmenter",
                                          str(seg), "--convention", convention, "--json", str(tmp_path / f"{convention}.json")])
        assert result.exit_code == 0, result.output
        assert "14 of the 19 classes (--classes 19) never occur in the labels" in " ".join(result.output.split())
        reports[convention] = json.loads((tmp_path / f"{convention}.json").read_text())
    five = expected[:5, :5]
    assert math.isclose(reports["drn"]["mean_iou"], fcn_score.scores(five, "drn")["mean_iou"])
    assert math.isclose(reports["pix2pix"]["mean_iou"], fcn_score.scores(five, "pix2pix")["mean_iou"] * 5 / 19)
    assert math.isclose(reports["pix2pix"]["class_accuracy"], reports["drn"]["class_accuracy"] * 5 / 19)
    fcn = reports["pix2pix"]["protocol"]["fcn"]
    assert fcn["convention"] == "pix2pix" and "1e-12" in fcn["formulas"]
    assert fcn["absent_classes"] == label_maps.CITYSCAPES_CLASSES[5:]
    assert reports["pix2pix"]["warnings"] and "--classes 5" in reports["pix2pix"]["warnings"][0]
    assert reports["drn"]["protocol"]["fcn"]["convention"] == "drn"
    result = CliRunner().invoke(app, ["eval", "fcn", "--fake", str(fake), "--labels", str(labels), "--segmenter",
                                      str(seg), "--classes", "5"])
    assert result.exit_code == 0 and "never occur" not in result.output  # every class occurs: no warning
    result = CliRunner().invoke(app, ["eval", "fcn", "--fake", str(fake), "--labels", str(labels), "--segmenter",
                                      str(seg), "--convention", "cut"])
    assert result.exit_code == 2 and "--convention cut: choose pix2pix or drn" in result.output


def test_confusion_ignores_labels_past_the_class_count_and_counts_foreign_predictions_as_wrong():
    labels = np.array([[0, 1], [19, 255], [1, 1]])
    preds = np.array([[0, 0], [1, 1], [1, 30]])
    matrix = fcn_score.confusion(labels, preds, 19)
    assert matrix.shape == (19, 20) and matrix.sum() == 4  # the two ignored labels are not counted
    assert matrix[0, 0] == 1 and matrix[1, 0] == 1 and matrix[1, 1] == 1 and matrix[1, 19] == 1
    s = fcn_score.scores(matrix, "drn")
    assert math.isclose(s["pixel_accuracy"], 2 / 4)
    assert math.isclose(s["mean_iou"], np.mean([1 / (1 + 2 - 1), 1 / (3 + 1 - 1)]))
    s = fcn_score.scores(matrix, "pix2pix")  # the 17 classes absent from the labels count 0
    assert math.isclose(s["mean_iou"], (1 / (1 + 2 - 1) + 1 / (3 + 1 - 1)) / 19)


def test_label_maps_decode_from_cityscapes_colours_ids_and_palettes(tmp_path):
    rng = np.random.default_rng(0)
    train_ids = np.kron(rng.integers(0, 19, (4, 6)), np.ones((8, 8), dtype=np.int64))  # regions, like real maps
    colour = label_maps.cityscapes_color_map(train_ids)
    Image.fromarray(colour).save(tmp_path / "c.png")
    Image.fromarray(colour).save(tmp_path / "c.jpg", quality=90)
    decoder = label_maps.LabelDecoder()
    assert np.array_equal(decoder.decode(tmp_path / "c.png"), train_ids)
    assert (decoder.decode(tmp_path / "c.jpg") == train_ids).mean() > 0.8  # JPEG: nearest colour; edges blur
    ids = np.array([[7, 8, 26], [0, 33, 18]], dtype=np.uint8)  # road, sidewalk, car / unlabeled, bicycle, polegroup
    Image.fromarray(ids).save(tmp_path / "x_gtFine_labelIds.png")
    assert decoder.decode(tmp_path / "x_gtFine_labelIds.png").tolist() == [[0, 1, 13], [255, 18, 255]]
    Image.fromarray(ids).save(tmp_path / "plain.png")
    assert decoder.decode(tmp_path / "plain.png").tolist() == ids.tolist()  # single channel: train ids as they are
    (tmp_path / "palette.txt").write_text("0 0 0\n255,255,255\n")
    two = label_maps.LabelDecoder("color", label_maps.read_palette(tmp_path / "palette.txt"))
    Image.fromarray(np.array([[[250, 250, 250], [3, 3, 3]], [[128, 0, 0], [0, 0, 0]]], dtype=np.uint8)).save(
        tmp_path / "p.png")
    assert two.decode(tmp_path / "p.png").tolist() == [[1, 0], [255, 0]]  # far from every colour: ignored


class _OracleSegmenter(torch.nn.Module):
    """Labels each pixel with the nearest Cityscapes colour: exact on colour maps used as 'photos'."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("palette", torch.tensor(label_maps.CITYSCAPES_PALETTE, dtype=torch.float32) / 255)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return -((x[:, None] - self.palette[None, :, :, None, None]) ** 2).sum(2)


def test_eval_fcn_scores_generated_photos_and_real_ones(tmp_path):
    import json

    seg = tmp_path / "seg.pt"
    torch.jit.script(_OracleSegmenter()).save(str(seg))
    labels, fake, real = (tmp_path / d for d in ("labels", "fake", "real"))
    for folder in (labels, fake, real):
        folder.mkdir()
    rng = np.random.default_rng(1)
    expected = np.zeros((19, 20), dtype=np.int64)
    for i in range(3):
        ids = rng.integers(0, 19, (8, 8))
        Image.fromarray(label_maps.cityscapes_color_map(ids)).save(labels / f"{i}.png")
        Image.fromarray(label_maps.cityscapes_color_map(ids)).save(real / f"{i}.png")
        wrong = ids.copy()
        wrong[:2] = (wrong[:2] + 1) % 19  # two rows of eight mislabelled
        Image.fromarray(label_maps.cityscapes_color_map(wrong)).save(fake / f"{i}_fake_B.png")
        expected += fcn_score.confusion(ids, wrong, 19)
    result = CliRunner().invoke(app, ["eval", "fcn", "--fake", str(fake), "--labels", str(labels), "--real", str(real),
                                      "--segmenter", str(seg), "--json", str(tmp_path / "f.json")])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "f.json").read_text())
    assert math.isclose(report["pixel_accuracy"], 48 / 64)
    assert math.isclose(report["mean_iou"], fcn_score.scores(expected)["mean_iou"])
    # pix2pix's convention divides by (sum + 1e-12): a perfect row is 1 - 5e-15, as get_scores gives
    assert math.isclose(report["real_pixel_accuracy"], 1.0) and math.isclose(report["real_mean_iou"], 1.0)
    fcn = report["protocol"]["fcn"]
    assert fcn["segmenter"] == "torchscript:seg.pt" and fcn["images"] == 3 and fcn["classes"] == 19


def test_eval_fcn_with_a_torchvision_segmenter_from_the_registry(tmp_path, monkeypatch):
    import json

    import torchvision

    torch.manual_seed(0)
    net = torchvision.models.segmentation.fcn_resnet50(weights=None, weights_backbone=None, num_classes=21,
                                                        aux_loss=True)
    torch.save(net.state_dict(), tmp_path / "fcn_resnet50_coco-1167a1af.pth")
    for d in ("labels", "fake"):
        (tmp_path / d).mkdir()
    Image.fromarray(label_maps.cityscapes_color_map(np.full((16, 16), 13))).save(tmp_path / "labels" / "a.png")
    Image.fromarray(np.full((32, 32, 3), 90, dtype=np.uint8)).save(tmp_path / "fake" / "a.png")
    result = CliRunner().invoke(app, ["eval", "fcn", "--fake", str(tmp_path / "fake"), "--labels",
                                      str(tmp_path / "labels"), "--weights-dir", str(tmp_path), "--json",
                                      str(tmp_path / "t.json")])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "t.json").read_text())
    fcn = report["protocol"]["fcn"]
    assert fcn["segmenter"] == "torchvision:fcn_resnet50" and "car" in fcn["evaluated_classes"]
    assert "road" not in fcn["evaluated_classes"]  # VOC has no road: Cityscapes scored on shared classes only
    assert report["protocol"]["weights"]["segmenter"]["verified"] is False
    assert 0.0 <= report["pixel_accuracy"] <= 1.0
    missing = CliRunner().invoke(app, ["eval", "fcn", "--fake", str(tmp_path / "fake"), "--labels",
                                       str(tmp_path / "labels"), "--segmenter", "torchvision:deeplabv3_resnet50"])
    assert missing.exit_code == 2 and "deeplabv3_resnet50_coco-cd0a2569.pth" in missing.output


def test_lpips_spatial_map_and_diversity_protocol(alex, tmp_path, monkeypatch):
    from i2i_cli.evaluation.lpips_metric import diversity_lpips_folder, diversity_lpips_tasks

    monkeypatch.setenv("I2I_WEIGHTS_DIR", str(alex[0]))
    spatial, _ = build_lpips("alex", spatial=True)
    model, _ = build_lpips("alex")
    a, b, c = (torch.rand(1, 3, 32, 32) * 2 - 1 for _ in range(3))
    with torch.no_grad():
        assert spatial(a, b).shape == (1, 1, 32, 32)
        ab, ac, bc = (float(model(x, y)) for x, y in ((a, b), (a, c), (b, c)))
    mean, per_task = diversity_lpips_tasks({"t1": [[a, b, c], [a, a]], "t2": [[b, c]]}, model)
    assert math.isclose(per_task["t1"], np.mean([np.mean([ab, ac, bc]), 0.0]), rel_tol=1e-6)
    assert math.isclose(mean, np.mean([per_task["t1"], bc]), rel_tol=1e-6)
    for name, t in (("x", a), ("y", b)):
        (tmp_path / "out" / "cat2dog" / "img0").mkdir(parents=True, exist_ok=True)
        arr = ((t[0].permute(1, 2, 0) + 1) * 127.5).round().clamp(0, 255).byte().numpy()
        Image.fromarray(arr).save(tmp_path / "out" / "cat2dog" / "img0" / f"{name}.png")
    folder_mean, tasks, bad = diversity_lpips_folder(tmp_path / "out", model)
    assert list(tasks) == ["cat2dog"] and not bad and math.isclose(folder_mean, ab, rel_tol=0.05)


def test_eval_checkpoint_translates_the_test_split_and_scores_it(small_inception_dir, alex, datasets, tmp_path):
    import json
    import shutil

    from i2i_cli.engine.trainer import TrainOptions, train
    from tests.conftest import tiny_config

    shutil.copy(alex[0] / "alexnet-owt-7be5be79.pth", small_inception_dir)
    train("pix2pix", tiny_config("pix2pix"), TrainOptions(data=datasets["aligned"], out=tmp_path / "run", steps=1,
                                                          device="cpu"))
    result = CliRunner().invoke(app, ["eval", "--checkpoint", str(tmp_path / "run"), "--metrics", "kid",
                                      "--kid-subsets", "3", "--weights-dir", str(small_inception_dir), "--json",
                                      str(tmp_path / "e.json")])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "e.json").read_text())
    assert report["kid_mean"] is not None and report["lpips"] is not None  # paired data: LPIPS to ground truth too
    assert report["protocol"]["n_fake"] == 4 and report["protocol"]["step"] == 1
    assert len(list((tmp_path / "run" / "eval" / "step_00000001" / "fake").glob("*.png"))) == 4

    from tests.run_factory import make_run

    segmenter = make_run(tmp_path / "seg", "segmenter")  # a segmenter run scores the translated label maps too
    result = CliRunner().invoke(app, ["eval", "--checkpoint", str(tmp_path / "run"), "--metrics", "kid",
                                      "--kid-subsets", "3", "--weights-dir", str(small_inception_dir),
                                      "--segmenter", str(segmenter), "--json", str(tmp_path / "s.json")])
    assert result.exit_code == 0, result.output
    with_fcn = json.loads((tmp_path / "s.json").read_text())
    assert with_fcn["kid_mean"] == report["kid_mean"] and with_fcn["protocol"]["fcn"]["segmenter"].startswith("run:")
    work = tmp_path / "run" / "eval" / "step_00000001"
    result = CliRunner().invoke(app, ["eval", "fcn", "--fake", str(work / "fake"), "--labels", str(work / "inputs"),
                                      "--real", str(work / "real"), "--segmenter", str(segmenter),
                                      "--json", str(tmp_path / "f.json")])
    assert result.exit_code == 0, result.output
    fcn = json.loads((tmp_path / "f.json").read_text())
    for key in ("pixel_accuracy", "mean_iou", "real_pixel_accuracy", "real_mean_iou"):
        assert with_fcn[key] == fcn[key]
    folders = CliRunner().invoke(app, ["eval", "--real", str(work / "real"), "--fake", str(work / "fake"),
                                       "--segmenter", str(segmenter)])
    assert folders.exit_code == 2 and "`i2i eval fcn" in folders.output



def test_cityscapes_folders_pair_each_photo_with_its_id_map_not_its_colour_or_instance_map(tmp_path):
    images, labels = tmp_path / "leftImg8bit" / "val" / "lindau", tmp_path / "gtFine" / "val" / "lindau"
    images.mkdir(parents=True)
    labels.mkdir(parents=True)
    blank = Image.fromarray(np.zeros((8, 16, 3), dtype=np.uint8))
    blank.save(images / "lindau_000000_000019_leftImg8bit.png")
    for kind in ("color", "instanceIds", "labelIds"):
        blank.save(labels / f"lindau_000000_000019_gtFine_{kind}.png")
    pairs, missing = label_maps.match_labels(images.parent, labels.parent)
    assert not missing and [label.name for _, label in pairs] == ["lindau_000000_000019_gtFine_labelIds.png"]
    blank.save(labels / "lindau_000000_000019_gtFine_labelTrainIds.png")
    pairs, _ = label_maps.match_labels(images.parent, labels.parent)
    assert [label.name for _, label in pairs] == ["lindau_000000_000019_gtFine_labelTrainIds.png"]


def test_a_warning_after_a_multi_threaded_decode_still_reaches_the_user(tmp_path):
    """Decoding in a thread pool once left a global "ignore" filter behind (catch_warnings is not thread-safe)."""
    import warnings
    from concurrent.futures import ThreadPoolExecutor

    from i2i_cli.data.images import load_image

    files = []
    for i in range(64):
        files.append(tmp_path / f"{i}.png")
        Image.fromarray(np.full((4, 4, 3), i, dtype=np.uint8)).save(files[-1])
    for attempt in range(5):
        with ThreadPoolExecutor(max_workers=8) as pool:
            assert len(list(pool.map(load_image, files * 4))) == 256
        with warnings.catch_warnings(record=True) as caught:  # records what the filters let through
            warnings.warn(f"a later warning {attempt}", RuntimeWarning, stacklevel=1)
        assert [str(w.message) for w in caught] == [f"a later warning {attempt}"]


def test_paired_lpips_lists_fakes_without_a_namesake(alex, tmp_path, monkeypatch):
    import json

    monkeypatch.setenv("I2I_WEIGHTS_DIR", str(alex[0]))
    real, fake = _folder(tmp_path / "real", 1, n=3), _folder(tmp_path / "fake", 2, n=3)
    Image.fromarray(np.zeros((48, 40, 3), dtype=np.uint8)).save(fake / "extra.png")  # no namesake in real/
    result = CliRunner().invoke(app, ["eval", "--real", str(real), "--fake", str(fake), "--metrics", "lpips",
                                      "--json", str(tmp_path / "l.json")])
    assert result.exit_code == 0, result.output
    assert "1 file(s) of" in result.output and "extra.png" in result.output
    report = json.loads((tmp_path / "l.json").read_text())
    assert report["protocol"]["lpips"]["pairs"] == 3 and report["protocol"]["lpips"]["unmatched_fakes"] == ["extra.png"]
    assert "extra.png" in report["warnings"][0]


def test_eval_of_an_unpaired_run_refuses_paired_lpips_and_leaves_it_out_by_default(datasets, tmp_path):
    from i2i_cli.data.layouts import detect_layout
    from i2i_cli.evaluation.evaluate import _run_metrics
    from tests.run_factory import make_run

    unaligned, aligned = detect_layout(datasets["unaligned"]), detect_layout(datasets["aligned"])
    assert not unaligned.paired and aligned.paired and not detect_layout(datasets["domains"]).paired
    run = make_run(tmp_path / "cyclegan", "cyclegan", data={"root": str(datasets["unaligned"])})
    result = CliRunner().invoke(app, ["eval", "--checkpoint", str(run), "--metrics", "fid,lpips", "--out",
                                      str(tmp_path / "work")])
    assert result.exit_code == 2, result.output
    assert "not paired" in result.output and "drop lpips from --metrics" in result.output
    assert not (tmp_path / "work").exists()  # refused before translating
    assert _run_metrics(("fid", "kid"), unaligned, datasets["unaligned"]) == ("fid", "kid")
    assert _run_metrics(("fid", "kid"), aligned, datasets["aligned"]) == ("fid", "kid", "lpips")


def test_eval_of_a_segmenter_run_names_its_convention(datasets, tmp_path):
    import json

    from tests.run_factory import make_run

    run = make_run(tmp_path / "seg", "segmenter", data={"root": str(datasets["segmentation"])})
    reports = {}
    for convention in ("pix2pix", "drn"):
        result = CliRunner().invoke(app, ["eval", "--checkpoint", str(run), "--fcn-convention", convention, "--out",
                                          str(tmp_path / "work"), "--json", str(tmp_path / f"{convention}.json")])
        assert result.exit_code == 0, result.output
        assert f"{convention} convention" in " ".join(result.output.split())
        reports[convention] = json.loads((tmp_path / f"{convention}.json").read_text())
    for convention, report in reports.items():
        fcn = report["protocol"]["fcn"]
        assert fcn["convention"] == convention and isinstance(fcn["absent_classes"], list)
    assert reports["pix2pix"]["pixel_accuracy"] == pytest.approx(reports["drn"]["pixel_accuracy"], abs=1e-12)
    assert reports["pix2pix"]["protocol"]["fcn"]["absent_classes"]  # synthetic scenes: fewer than the run's 19
    assert reports["pix2pix"]["mean_iou"] <= reports["drn"]["mean_iou"] and reports["pix2pix"]["warnings"]
    wrong = CliRunner().invoke(app, ["eval", "--checkpoint", str(run), "--fcn-convention", "cut"])
    assert wrong.exit_code == 2 and "choose pix2pix or drn" in wrong.output
