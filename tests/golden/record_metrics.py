"""Record tests/golden/metrics.pt: the metric formulas of the official code on small random inputs.

Runs outside CI against three checkouts named by environment variables (only their numbers are saved):

- I2I_OFFICIAL_PIX2PIX: junyanz/pytorch-CycleGAN-and-pix2pix (scripts/eval_cityscapes/util.py is enough:
  `fast_hist`, `get_scores`);
- I2I_OFFICIAL_DRN: fyu/drn (segment.py `fast_hist`, `per_class_iu`; segment.py is Python 2 (`async=True`)
  and cannot be imported on Python 3, so those two functions are read out of it and executed as they are);
- I2I_OFFICIAL_STARGAN_V2: clovaai/stargan-v2 (metrics/lpips.py: `LPIPS`, `calculate_lpips_given_images`).

The commit of each checkout comes from `git rev-parse HEAD` in it, or from I2I_OFFICIAL_<NAME>_COMMIT when the
checkout is an exported tree. For example:

    I2I_OFFICIAL_PIX2PIX=/tmp/official/jz I2I_OFFICIAL_PIX2PIX_COMMIT=197ca33ce098d2c3bd499b1ab2d701322efa1beb \\
    I2I_OFFICIAL_DRN=/tmp/official/drn I2I_OFFICIAL_DRN_COMMIT=d75db2ee7070426db7a9264ee61cf489f8cf178c \\
    I2I_OFFICIAL_STARGAN_V2=/tmp/official/sg2 I2I_OFFICIAL_STARGAN_V2_COMMIT=875b70a150609e8a678ed8482562e7074cdce7e5 \\
    python tests/golden/record_metrics.py

StarGAN v2's LPIPS loads ImageNet AlexNet weights (`models.alexnet(pretrained=True)`); none are downloaded here:
its AlexNet gets seeded random weights made by `seeded_alexnet_features` (the test rebuilds them from the seed,
so no backbone is stored) and keeps the official linear heads (metrics/lpips_weights.ckpt, equal to the lpips
package's v0.1 alex heads). Recorded: each input's LPIPS over all pairs of its outputs (single images), the
official value of each loader batch (`calculate_lpips_given_images` on the batch) and the task value, the mean
of the batch values as metrics/eval.py takes it (`np.array(lpips_values).mean()`).
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

OUT = Path(__file__).resolve().parent / "metrics.pt"
N_CLASSES = 7  # labels use classes 0, 1, 2, 4; 3 is predicted but never a label; 5 and 6 never occur
LABEL_CLASSES, PREDICTED_CLASSES = [0, 1, 2, 4], [0, 1, 2, 3, 4]
ALEX_SEED, SIZE, INPUTS, OUTPUTS, BATCH = 1234, 64, 5, 3, 2  # batches of inputs {0, 1}, {2, 3}, {4}


def checkout(name: str) -> tuple[Path, str]:
    root = os.environ.get(f"I2I_OFFICIAL_{name}")
    if not root:
        sys.exit(f"set I2I_OFFICIAL_{name} to a checkout of the official repository")
    commit = os.environ.get(f"I2I_OFFICIAL_{name}_COMMIT")
    if not commit:
        commit = subprocess.run(["git", "-C", root, "rev-parse", "HEAD"], capture_output=True, text=True,
                                check=True).stdout.strip()
    return Path(root), commit


ALEX_CONVS = {0: (64, 3, 11), 3: (192, 64, 5), 6: (384, 192, 3), 8: (256, 384, 3), 10: (256, 256, 3)}


def seeded_alexnet_features(seed: int = ALEX_SEED) -> dict[str, torch.Tensor]:
    """torchvision AlexNet `features.*` weights (its file's key layout) drawn from one seed: He-scaled normal
    weights, small biases. The test rebuilds them with this function."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for index, (out_channels, in_channels, kernel) in ALEX_CONVS.items():
        fan_in = in_channels * kernel * kernel
        state[f"features.{index}.weight"] = torch.randn(out_channels, in_channels, kernel, kernel,
                                                        generator=generator) * (2.0 / fan_in) ** 0.5
        state[f"features.{index}.bias"] = torch.randn(out_channels, generator=generator) * 0.01
    return state


def segmentation_inputs() -> tuple[np.ndarray, np.ndarray]:
    """Labels (with ignored 255 pixels) and predictions of 3 images of 12 x 16."""
    rng = np.random.default_rng(7)
    labels = rng.choice(LABEL_CLASSES, size=(3, 12, 16))
    labels[rng.random(labels.shape) < 0.05] = 255
    predictions = np.where(rng.random(labels.shape) < 0.6, np.where(labels == 255, 0, labels),
                           rng.choice(PREDICTED_CLASSES, size=labels.shape))
    return labels.astype(np.int64), predictions.astype(np.int64)


def record_pix2pix(labels: np.ndarray, predictions: np.ndarray) -> dict[str, Any]:
    root, commit = checkout("PIX2PIX")
    spec = importlib.util.spec_from_file_location("pix2pix_util", root / "scripts" / "eval_cityscapes" / "util.py")
    util = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(util)
    hist = sum(util.fast_hist(a.flatten(), b.flatten(), N_CLASSES) for a, b in zip(labels, predictions))
    acc, mean_class_acc, mean_iou, class_acc, iou = util.get_scores(hist)
    return {"official_repo": "junyanz/pytorch-CycleGAN-and-pix2pix", "official_commit": commit,
            "source": "scripts/eval_cityscapes/util.py fast_hist(label, prediction, n), get_scores(hist)",
            "hist": torch.from_numpy(np.asarray(hist, dtype=np.int64)), "pixel_accuracy": float(acc),
            "class_accuracy": float(mean_class_acc), "mean_iou": float(mean_iou),
            "per_class_accuracy": torch.from_numpy(class_acc), "per_class_iou": torch.from_numpy(iou)}


def drn_functions(root: Path) -> dict[str, Any]:
    """`fast_hist` and `per_class_iu` of fyu/drn segment.py, executed from the checkout's own text."""
    text = (root / "segment.py").read_text()
    namespace: dict[str, Any] = {"np": np}
    for name in ("fast_hist", "per_class_iu"):
        match = re.search(rf"^def {name}\(.*?(?=^\S)", text, flags=re.S | re.M)
        assert match, f"no {name} in {root / 'segment.py'}"
        exec(match.group(0), namespace)  # noqa: S102 - the official function, run from the checkout
    return namespace


def record_drn(labels: np.ndarray, predictions: np.ndarray) -> dict[str, Any]:
    root, commit = checkout("DRN")
    drn = drn_functions(root)
    hist = np.zeros((N_CLASSES, N_CLASSES))
    for a, b in zip(labels, predictions):
        hist += drn["fast_hist"](b.flatten(), a.flatten(), N_CLASSES)  # segment.py: fast_hist(pred, label, n)
    with np.errstate(divide="ignore", invalid="ignore"):
        ious = drn["per_class_iu"](hist)
    return {"official_repo": "fyu/drn", "official_commit": commit,
            "source": "segment.py fast_hist(pred, label, n), per_class_iu(hist), np.nanmean (test())",
            "hist": torch.from_numpy(hist.astype(np.int64)), "per_class_iou": torch.from_numpy(ious),
            "mean_iou": float(np.nanmean(ious))}


def official_lpips(root: Path) -> Any:
    """StarGAN v2's metrics/lpips.py with the seeded AlexNet, on the CPU."""
    import torchvision

    sys.path.insert(0, str(root))
    import metrics.lpips as sg2_lpips

    untrained = torchvision.models.alexnet

    def alexnet(*args: Any, **kwargs: Any) -> torch.nn.Module:  # instead of the ImageNet download
        net = untrained(weights=None)
        net.features.load_state_dict({k.split(".", 1)[1]: v for k, v in seeded_alexnet_features().items()})
        return net

    sg2_lpips.models.alexnet = alexnet
    torch.Tensor.cuda = lambda self, *a, **k: self  # its mu / sigma call .cuda(); this machine has no GPU
    os.chdir(root)  # it loads 'metrics/lpips_weights.ckpt' relative to the working directory
    return sg2_lpips


def record_stargan_v2() -> dict[str, Any]:
    root, commit = checkout("STARGAN_V2")
    sg2_lpips = official_lpips(root)
    generator = torch.Generator().manual_seed(5)
    images = torch.randint(0, 256, (INPUTS, OUTPUTS, 3, SIZE, SIZE), generator=generator, dtype=torch.uint8)
    outputs = images.float() / 127.5 - 1  # generator outputs in [-1, 1]
    model = sg2_lpips.LPIPS().eval()
    pairs = [(i, j) for i in range(OUTPUTS - 1) for j in range(i + 1, OUTPUTS)]  # the official loop's order
    with torch.no_grad():
        distances = torch.tensor([[float(model(outputs[n, i : i + 1], outputs[n, j : j + 1])) for i, j in pairs]
                                  for n in range(INPUTS)], dtype=torch.float64)
    batch_values = []
    for start in range(0, INPUTS, BATCH):  # one loader batch: group_of_images[j] is (batch, 3, H, W)
        group = [outputs[start : start + BATCH, j] for j in range(OUTPUTS)]
        batch_values.append(sg2_lpips.calculate_lpips_given_images(group))
    return {"official_repo": "clovaai/stargan-v2", "official_commit": commit,
            "source": "metrics/lpips.py LPIPS, calculate_lpips_given_images per loader batch; metrics/eval.py "
                      "np.array(lpips_values).mean() over batches",
            "alexnet_seed": ALEX_SEED, "outputs_uint8": images, "pairs": torch.tensor(pairs),
            "pair_distances": distances, "batch_size": BATCH, "batch_values": torch.tensor(batch_values,
                                                                                            dtype=torch.float64),
            "task_value": float(np.array(batch_values).mean())}


def main() -> None:
    labels, predictions = segmentation_inputs()
    fixture = {"labels": torch.from_numpy(labels), "predictions": torch.from_numpy(predictions),
               "n_classes": N_CLASSES, "pix2pix": record_pix2pix(labels, predictions),
               "drn": record_drn(labels, predictions), "stargan_v2": record_stargan_v2()}
    sections = [fixture[k] for k in ("pix2pix", "drn", "stargan_v2")]
    fixture["official_repo"] = "; ".join(s["official_repo"] for s in sections)
    fixture["official_commit"] = "; ".join(s["official_commit"] for s in sections)
    torch.save(fixture, OUT)
    print(f"wrote {OUT} ({OUT.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
