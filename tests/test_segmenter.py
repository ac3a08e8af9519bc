"""The segmenter method (DRN-D-22, fyu/drn) and its use as the FCN-score's --segmenter."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from i2i_cli.data.datasets import Augment
from i2i_cli.data.labels import IGNORE
from i2i_cli.data.layouts import detect_layout
from i2i_cli.engine.checkpoint import load_for_inference
from i2i_cli.engine.trainer import TrainOptions, train
from i2i_cli.errors import DataError
from i2i_cli.evaluation.fcn_score import confusion, scores
from i2i_cli.main import app
from i2i_cli.models.base import SegmentationData
from i2i_cli.models.methods.segmenter import Segmenter, poly_factor
from i2i_cli.models.networks.drn import DRN, DRNSeg, drn_d_22
from tests.conftest import tiny_config

runner = CliRunner()
COLOURS = np.array([[200, 30, 30], [30, 200, 30], [30, 30, 200], [220, 220, 40]], dtype=np.uint8)


def _blocks(rng: np.random.Generator, h: int, w: int, n_classes: int) -> np.ndarray:
    """A label map of random rectangles of classes 0..n-1, with an ignored (255) strip."""
    label = np.zeros((h, w), dtype=np.uint8)
    for _ in range(6):
        y, x = rng.integers(0, h), rng.integers(0, w)
        label[y: y + rng.integers(4, h), x: x + rng.integers(4, w)] = rng.integers(0, n_classes)
    label[:, :2] = IGNORE
    return label


def _photo(label: np.ndarray) -> np.ndarray:
    """A 'photo' whose colour says its class: a segmenter can learn it, geometry can be checked from it."""
    photo = np.zeros((*label.shape, 3), dtype=np.uint8)
    known = label != IGNORE
    photo[known] = COLOURS[label[known]]
    return photo


def _folder_dataset(root: Path, sizes: list[tuple[int, int]], n_classes: int = 4, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for folder in ("images", "labels"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    for i, (h, w) in enumerate(sizes):
        label = _blocks(rng, h, w, n_classes)
        Image.fromarray(_photo(label)).save(root / "images" / f"f{i}_leftImg8bit.png")
        Image.fromarray(label).save(root / "labels" / f"f{i}_gtFine_labelTrainIds.png")
    return root


# --- the network ------------------------------------------------------------------------------------------
def test_drn_d_22_has_the_published_size_keys_and_output_stride():
    net = drn_d_22()
    assert abs(sum(p.numel() for p in net.parameters()) / 1e6 - 16.4) < 0.05  # fyu/drn README: 16.4M
    keys = net.state_dict().keys()
    assert {k.split(".")[0] for k in keys} == {f"layer{i}" for i in range(9)} | {"fc"}
    assert "layer3.0.downsample.0.weight" in keys and "layer5.1.conv2.weight" in keys
    dilations = [net.layer5[0].conv1.dilation, net.layer6[0].conv1.dilation, net.layer7[0].dilation, net.layer8[0].dilation]
    assert [d[0] for d in dilations] == [2, 4, 2, 1]
    features = DRN(num_classes=0)(torch.zeros(1, 3, 64, 48))
    assert features.shape == (1, 512, 8, 6)
    seg = DRNSeg(5, channels=tuple(4 * m for m in (1, 2, 4, 8, 16, 32, 32, 32)))
    assert seg(torch.zeros(2, 3, 64, 48)).shape == (2, 5, 64, 48)


def test_drnseg_upsampling_is_a_fixed_bilinear_interpolation():
    seg = DRNSeg(3, channels=tuple(4 * m for m in (1, 2, 4, 8, 16, 32, 32, 32)))
    assert not seg.up.weight.requires_grad
    assert all(p is not seg.up.weight for p in seg.trainable_parameters())
    coarse = torch.rand(1, 3, 6, 6)
    up = seg.up(coarse)
    expected = torch.nn.functional.interpolate(coarse, scale_factor=8, mode="bilinear", align_corners=False)
    inner = (slice(None), slice(None), slice(8, -8), slice(8, -8))  # borders: the transposed conv's zero padding
    assert torch.allclose(up[inner], expected[inner], atol=1e-5)


def test_imagenet_and_cityscapes_files_load_into_drnseg():
    torch.manual_seed(0)
    imagenet = drn_d_22().state_dict()
    seg = DRNSeg(19)
    seg.load_pretrained_state_dict({f"module.{k}": v for k, v in imagenet.items()})
    assert torch.equal(seg.base[3][0].conv1.weight, imagenet["layer3.0.conv1.weight"])
    trained = DRNSeg(19).state_dict()
    other = DRNSeg(19)
    other.load_official_state_dict({"state_dict": {f"module.{k}": v for k, v in trained.items() if k != "up.weight"}})
    assert all(torch.equal(other.state_dict()[k], v) for k, v in trained.items())
    with pytest.raises(KeyError):
        other.load_official_state_dict(imagenet)  # an ImageNet file is not a segmenter


# --- data ----------------------------------------------------------------------------------------------------
def test_folder_dataset_keeps_photo_and_label_aligned_through_crops_pads_and_flips(tmp_path):
    root = _folder_dataset(tmp_path / "seg", [(40, 56), (24, 20), (36, 36)])
    layout = detect_layout(root)
    assert layout.kind == "segmentation"
    dataset = layout.training_dataset("segmentation", "train", Augment(32, 0, True, False),
                            segmentation=SegmentationData(n_classes=4, crop_height=24))
    for index in range(len(dataset)):
        for seed in range(6):
            item = dataset[(index, seed)]
            photo, label = item["A"].permute(1, 2, 0).numpy(), item["label"].numpy()
            assert photo.shape == (24, 32, 3) and label.shape == (24, 32)
            known = label != IGNORE
            assert np.array_equal(photo[known], _photo(label)[known]), "photo and label were cropped differently"
    padded = dataset[(1, 0)]  # 24x20 padded to 24x32 as segment.py: 6 columns each side, photo reflected
    label, photo = padded["label"].numpy(), padded["A"].permute(1, 2, 0).numpy()
    assert (label[:, :6] == IGNORE).all() and (label[:, -6:] == IGNORE).all() and (label[:, 6:-6] != IGNORE).any()
    assert photo[:, :6].any() or photo[:, -6:].any()  # reflected content, not black
    assert len(dataset.cache) == 3 and dataset[(0, 0)]["label"].dtype == torch.int64
    small = layout.training_dataset("segmentation", "train", Augment(32, 0, True, False),
                          segmentation=SegmentationData(n_classes=4, crop_height=24))
    small.cache_budget = 40 * 56 * 4  # room for the first pair only: the others are decoded on every use
    assert all(np.array_equal(small[(i, 3)]["label"], dataset[(i, 3)]["label"]) for i in range(3))
    assert list(small.cache) == [0] and small.cached_bytes <= small.cache_budget


def test_aligned_dataset_finds_the_label_side_and_decodes_cityscapes_colours(datasets, tmp_path):
    layout = detect_layout(datasets["aligned"])  # synthetic scenes: label map | photo, Cityscapes colours
    dataset = layout.training_dataset("segmentation", "train", Augment(32, 0, False, False),
                                      segmentation=SegmentationData(n_classes=19))
    assert dataset.side == "left"
    label = dataset[(0, 0)]["label"]
    assert set(label.unique().tolist()) <= {0, 2, 6, 7, 8, 9, 10}  # road, building, light, sign, veg., terrain, sky
    swapped = tmp_path / "swapped" / "train"
    swapped.mkdir(parents=True)
    for file in sorted((datasets["aligned"] / "train").iterdir())[:3]:
        pair = np.asarray(Image.open(file).convert("RGB"))
        half = pair.shape[1] // 2
        Image.fromarray(np.concatenate([pair[:, half:], pair[:, :half]], axis=1)).save(swapped / file.name)
    flipped = detect_layout(swapped.parent).training_dataset("segmentation", "train", Augment(32, 0, False, False),
                            segmentation=SegmentationData(n_classes=19))
    assert flipped.side == "right"


def test_bad_label_maps_are_named_with_the_fix(tmp_path):
    root = _folder_dataset(tmp_path / "seg", [(32, 32), (32, 32)])
    Image.fromarray(np.full((32, 32), 3, dtype=np.uint8)).save(root / "labels" / "f1_gtFine_labelTrainIds.png")
    dataset = detect_layout(root).training_dataset("segmentation", "train", Augment(32, 0, False, False),
                            segmentation=SegmentationData(n_classes=3))
    with pytest.raises(DataError, match=r"f1_gtFine_labelTrainIds\.png: label value 3 .*--set n_classes"):
        dataset.decoded(1)
    Image.fromarray(np.zeros((16, 16), dtype=np.uint8)).save(root / "labels" / "f0_gtFine_labelTrainIds.png")
    with pytest.raises(DataError, match="label map is 16x16 but its photo"):
        detect_layout(root).training_dataset("segmentation", "train", Augment(32, 0, False, False),
                      segmentation=SegmentationData(n_classes=4)).decoded(0)
    (root / "labels" / "f1_gtFine_labelTrainIds.png").unlink()
    with pytest.raises(DataError, match="no label map of the same name"):
        detect_layout(root).training_dataset("segmentation", "train", Augment(32, 0, False, False),
                      segmentation=SegmentationData(n_classes=4))


# --- training, schedule, the FCN-score ----------------------------------------------------------------------------
def test_schedules_are_segment_py_s_once_per_epoch():
    assert poly_factor(0, 100) == 1.0 and poly_factor(100, 100) == 0.0
    assert poly_factor(50, 100) == pytest.approx(0.5 ** 0.9)
    step = Segmenter(tiny_config("segmenter", epochs=250, step_epochs=100))  # the README's DRN-D-22 default
    factors = [step._lr_factor(s, 2500) for s in (0, 999, 1000, 1999, 2000, 2499)]  # 10 steps per epoch
    assert factors == pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.01])
    poly = Segmenter(tiny_config("segmenter", epochs=250, lr_mode="poly"))
    assert poly._lr_factor(1234, 2500) == pytest.approx((1 - 123 / 250) ** 0.9)  # epoch 123, not step 1234


@pytest.fixture(scope="module")
def trained_segmenter(tmp_path_factory):
    root = tmp_path_factory.mktemp("segrun")
    data = _folder_dataset(root / "data" / "train", [(32, 32)] * 8, seed=1).parent
    _folder_dataset(root / "data" / "val", [(32, 32)] * 4, seed=2)
    config = tiny_config("segmenter", n_classes=4, load_size=0, batch_size=4, base_channels=8, lr_mode="poly")
    result = train("segmenter", config, TrainOptions(data=data, out=root / "run", steps=100, device="cpu",
                                                     log_every=1, save_every=50, keep=0))
    return root, result


def test_trainer_uses_sgd_with_momentum_and_the_poly_schedule(trained_segmenter):
    root, result = trained_segmenter
    middle = root / "run" / "checkpoints" / "step_00000050" / "state.pt"
    group = torch.load(middle, map_location="cpu", weights_only=False)["optimizers"]["net"]["param_groups"][0]
    assert group["momentum"] == 0.9 and group["weight_decay"] == 1e-4
    assert group["lr"] == pytest.approx(0.01 * (1 - 50 / 100) ** 0.9)
    losses = [json.loads(line)["losses"]["CE"] for line in (root / "run" / "metrics.jsonl").read_text().splitlines()
              if "losses" in line]
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5]), "cross-entropy did not go down"


def test_eval_fcn_with_a_trained_segmenter_run_equals_its_own_predictions(trained_segmenter, tmp_path):
    root, _ = trained_segmenter
    val = root / "data" / "val"
    result = runner.invoke(app, ["eval", "fcn", "--fake", str(val / "images"), "--labels", str(val / "labels"),
                                 "--segmenter", str(root / "run"), "--json", str(tmp_path / "f.json")])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "f.json").read_text())
    assert report["protocol"]["fcn"]["classes"] == 4 and report["protocol"]["fcn"]["segmenter"].startswith("run:")
    assert len(report["protocol"]["fcn"]["segmenter_sha256"]) == 64  # which weights produced the number

    method = load_for_inference(root / "run").method
    matrix = np.zeros((4, 5), dtype=np.int64)
    for image in sorted((val / "images").iterdir()):
        photo = np.array(Image.open(image).convert("RGB"))
        label = np.asarray(Image.open(val / "labels" / image.name.replace("leftImg8bit", "gtFine_labelTrainIds")))
        x = torch.from_numpy(photo).permute(2, 0, 1)[None].float() / 127.5 - 1
        with torch.no_grad():
            predicted = method.logits(x).argmax(1)[0].numpy()
        matrix += confusion(label.astype(np.int64), predicted, 4)
    expected = scores(matrix)
    for key in ("pixel_accuracy", "class_accuracy", "mean_iou"):
        assert report[key] == pytest.approx(expected[key], abs=1e-9)
    train_images = root / "data" / "train"
    result = runner.invoke(app, ["eval", "fcn", "--fake", str(train_images / "images"), "--labels",
                                 str(train_images / "labels"), "--segmenter", str(root / "run"),
                                 "--json", str(tmp_path / "t.json")])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "t.json").read_text())["pixel_accuracy"] > 0.75  # it learned its training set


def test_translate_writes_colourised_label_maps(trained_segmenter, tmp_path):
    root, _ = trained_segmenter
    val = root / "data" / "val"
    result = runner.invoke(app, ["translate", "--checkpoint", str(root / "run"), str(val / "images"),
                                 str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    outputs = sorted((tmp_path / "out").glob("*.png"))
    assert len(outputs) == 4
    drawn = np.asarray(Image.open(outputs[0]).convert("RGB")).reshape(-1, 3)
    palette = {tuple(c) for c in load_for_inference(root / "run").method.colors.add(1).mul(127.5).round()
               .to(torch.uint8).tolist()}
    assert {tuple(c) for c in np.unique(drawn, axis=0).tolist()} <= palette


def test_eval_fcn_refuses_a_run_that_is_not_a_segmenter_or_has_other_classes(trained_segmenter, tmp_path):
    root, _ = trained_segmenter
    val = root / "data" / "val"
    args = ["eval", "fcn", "--fake", str(val / "images"), "--labels", str(val / "labels"), "--segmenter"]
    result = runner.invoke(app, args + [str(root / "run"), "--classes", "19"])
    assert result.exit_code == 2 and "predicts 4 classes but --classes is 19; pass --classes 4" in result.output, result.output
    result = runner.invoke(app, args + [str(tmp_path / "nothing")])
    assert result.exit_code == 2 and "no such file or run" in result.output


def test_cli_training_reports_a_bad_label_map_in_one_line(tmp_path):
    root = _folder_dataset(tmp_path / "seg", [(32, 32)] * 4)
    Image.fromarray(np.full((32, 32), 3, dtype=np.uint8)).save(root / "labels" / "f2_gtFine_labelTrainIds.png")
    result = runner.invoke(app, ["train", "--model", "segmenter", "--data", str(root), "--out", str(tmp_path / "run"),
                                 "--steps", "2", "--device", "cpu", "--set", "base_channels=4",
                                 "--set", "pretrained_backbone=false", "--set", "n_classes=2", "--set", "size=32"])
    assert result.exit_code == 2
    assert "--set n_classes=N" in result.output and "Traceback" not in result.output


def test_drn_cityscapes_segmenter_loads_from_the_weights_folder(tmp_path, monkeypatch):
    torch.manual_seed(0)
    weights = tmp_path / "weights"
    weights.mkdir()
    torch.save(DRNSeg(19).state_dict(), weights / "drn_d_22_cityscapes.pth")
    from i2i_cli.evaluation.fcn_score import load_segmenter

    segmenter = load_segmenter("drn-cityscapes", 19, weights_dir=weights)
    assert segmenter.n_outputs == 19 and segmenter.weights is not None
    assert segmenter.predict(np.zeros((24, 40, 3), dtype=np.uint8)).shape == (24, 40)
    from i2i_cli.errors import ConfigError

    with pytest.raises(ConfigError, match="--classes 19"):
        load_segmenter("drn-cityscapes", 7, weights_dir=weights)


def test_eval_of_a_segmenter_run_scores_its_val_split_like_eval_fcn(trained_segmenter, tmp_path):
    root, _ = trained_segmenter
    val = root / "data" / "val"
    result = runner.invoke(app, ["eval", "--checkpoint", str(root / "run"), "--out", str(tmp_path / "work"),
                                 "--json", str(tmp_path / "run.json")])
    assert result.exit_code == 0, result.output
    own = json.loads((tmp_path / "run.json").read_text())
    assert own["protocol"]["fcn"]["split"] == "val" and own["protocol"]["fcn"]["images"] == 4
    assert len(list((tmp_path / "work" / "predictions").glob("*.png"))) == 4
    result = runner.invoke(app, ["eval", "fcn", "--fake", str(val / "images"), "--labels", str(val / "labels"),
                                 "--segmenter", str(root / "run"), "--json", str(tmp_path / "fcn.json")])
    assert result.exit_code == 0, result.output
    fcn = json.loads((tmp_path / "fcn.json").read_text())
    for key in ("pixel_accuracy", "class_accuracy", "mean_iou"):
        assert own[key] == pytest.approx(fcn[key], abs=1e-9)


def test_colour_label_maps_with_a_palette_file_train_and_become_the_eval_default(tmp_path):
    rng = np.random.default_rng(5)
    root = tmp_path / "data"
    for split, count in (("train", 4), ("val", 2)):
        for folder in ("images", "labels"):
            (root / split / folder).mkdir(parents=True)
        for i in range(count):
            label = _blocks(rng, 32, 32, 4)
            label[label == IGNORE] = 0
            Image.fromarray(_photo(label)).save(root / split / "images" / f"{i}.png")
            Image.fromarray(COLOURS[label]).save(root / split / "labels" / f"{i}.png")  # colour label maps
    palette = tmp_path / "palette.txt"
    palette.write_text("".join(f"{r} {g} {b}\n" for r, g, b in COLOURS))
    result = runner.invoke(app, ["train", "--model", "segmenter", "--data", str(root), "--out", str(tmp_path / "run"),
                                 "--steps", "3", "--device", "cpu", "--set", "base_channels=4", "--set", "size=32",
                                 "--set", "pretrained_backbone=false", "--set", "n_classes=4",
                                 "--set", f"palette={palette}", "--set", "batch_size=2"])
    assert result.exit_code == 0, result.output
    loaded = load_for_inference(tmp_path / "run")
    assert list(loaded.method.config.palette_colors) == COLOURS.ravel().tolist()
    result = runner.invoke(app, ["eval", "fcn", "--fake", str(root / "val" / "images"), "--labels",
                                 str(root / "val" / "labels"), "--segmenter", str(tmp_path / "run"),
                                 "--json", str(tmp_path / "f.json")])
    assert result.exit_code == 0, result.output
    fcn = json.loads((tmp_path / "f.json").read_text())["protocol"]["fcn"]
    assert fcn["classes"] == 4 and "palette of 4 classes" in fcn["label_format"]
    palette.write_text("1 2 3\n")
    result = runner.invoke(app, ["train", "--model", "segmenter", "--data", str(root), "--out", str(tmp_path / "r2"),
                                 "--steps", "1", "--set", f"palette={palette}", "--set", "n_classes=4"])
    assert result.exit_code == 2 and "1 colours, but n_classes=4; pass --set n_classes=1" in result.output


def test_gan_options_the_segmenter_does_not_use_are_hidden_and_refused():
    result = runner.invoke(app, ["methods", "show", "segmenter", "--json"])
    assert result.exit_code == 0
    defaults = json.loads(result.output)["defaults"]
    assert defaults["momentum"] == 0.9 and defaults["lr_mode"] == "step"
    assert not {"beta1", "beta2", "direction", "init_type"} & set(defaults)
    result = runner.invoke(app, ["train", "--model", "segmenter", "--data", ".", "--out", "y", "--set", "beta1=0.1"])
    assert result.exit_code == 2 and "'beta1' is not used by this method" in result.output


def test_training_starts_from_the_imagenet_backbone_in_the_weights_folder(tmp_path):
    torch.manual_seed(0)
    weights = tmp_path / "weights"
    weights.mkdir()
    imagenet = drn_d_22().state_dict()
    torch.save(imagenet, weights / "drn_d_22-4bd2f8ea.pth")
    root = _folder_dataset(tmp_path / "seg", [(32, 32)] * 2)
    result = runner.invoke(app, ["train", "--model", "segmenter", "--data", str(root), "--out", str(tmp_path / "run"),
                                 "--steps", "1", "--device", "cpu", "--set", "size=32", "--set", "n_classes=4",
                                 "--set", "batch_size=2", "--set", "lr=0", "--weights-dir", str(weights)])
    assert result.exit_code == 0, result.output
    assert "unverified" in result.output or "differs" in result.output  # a stand-in file, not the official one
    net = load_for_inference(tmp_path / "run").method.net
    assert torch.equal(net.base[3][0].conv1.weight, imagenet["layer3.0.conv1.weight"])  # lr 0: the file's weights
    assert torch.equal(net.base[8][0].weight, imagenet["layer8.0.weight"])


def test_input_mean_and_std_come_from_info_json_or_the_training_photos(tmp_path):
    from i2i_cli.data.segmentation import resolve_normalization

    root = _folder_dataset(tmp_path / "seg", [(32, 32), (24, 40), (16, 16)])
    config = tiny_config("segmenter", n_classes=4)
    measured = resolve_normalization(config, detect_layout(root))
    pixels = np.concatenate([np.asarray(Image.open(f).convert("RGB")).reshape(-1, 3)
                             for f in sorted((root / "images").iterdir())]) / 255
    assert np.allclose(measured.mean, pixels.mean(0), atol=1e-6) and np.allclose(measured.std, pixels.std(0), atol=1e-6)
    (root / "info.json").write_text(json.dumps({"mean": [0.1, 0.2, 0.3], "std": [0.4, 0.5, 0.6]}))  # fyu/drn's file
    given = resolve_normalization(config, detect_layout(root))
    assert given.mean == (0.1, 0.2, 0.3) and given.std == (0.4, 0.5, 0.6)
    assert resolve_normalization(measured, detect_layout(root)).mean == measured.mean  # set values are kept
    (root / "info.json").write_text(json.dumps({"mean": [0.1, 0.2]}))
    with pytest.raises(DataError, match="info.json"):
        resolve_normalization(config, detect_layout(root))


def test_data_check_names_photos_without_a_label_map(tmp_path):
    root = _folder_dataset(tmp_path / "seg", [(32, 32)] * 3)
    (root / "labels" / "f1_gtFine_labelTrainIds.png").unlink()
    result = runner.invoke(app, ["data", "check", str(root), "--json", str(tmp_path / "c.json")])
    assert result.exit_code == 1 and "f1_leftImg8bit.png" in result.output and "without a label map" in result.output
    report = json.loads((tmp_path / "c.json").read_text())
    assert report["layout"] == "segmentation" and [Path(u["file"]).name for u in report["unmatched"]] == [
        "f1_leftImg8bit.png"]
