"""Record tests/golden/segmenter.pt from fyu/drn (runs outside CI).

    I2I_OFFICIAL_DRN=/path/to/drn python tests/golden/record_segmenter.py

Imports the checkout's drn.py and data_transforms.py and segment.py's DRNSeg. segment.py does not parse on
Python >= 3.7 (`.cuda(async=True)`, two lines of its train/validate loops); it is compiled in memory with
that keyword renamed `non_blocking`, nothing else changed. DRNSeg builds its backbone by name from drn.py,
so the recorder registers there a DRN-D-22 (drn.DRN with drn_d_22's BasicBlock, layers [1,1,2,2,2,2,1,1],
arch D) at channels (1, 2, 4, 8, 16, 32, 32, 32) (the constructor's `channels`; full width, 16M
parameters, would not fit a small fixture), i.e. i2i's base_channels 1. Then as segment.py's
train(), in float64 (use_float64: the network, its buffers and the input): the photo as
data_transforms.ToTensor / Normalize make it (u8 / 255, here in float64 where ToTensor's is float32; then
(x - mean) / std with Normalize's own float32 mean and std, Cityscapes' info.json values), output =
model(x)[0] (log-softmax of the x8 upsampled scores), NLLLoss2d with
ignore_index 255, and one SGD step over optim_parameters() (base + seg; `up` stays bilinear) at segment.py's
README settings: lr 0.01, momentum 0.9, weight decay 1e-4. 32 px, batch 2, 4 classes, some pixels 255.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

import torch
from recording_cut_cyclegan_pix2pix import (
    after_step,
    images_u8,
    official_checkout,
    round_weights_to_half,
    save,
    use_float64,
)
from torch import nn

SIZE, BATCH, CLASSES, CHANNELS = 32, 2, 4, (1, 2, 4, 8, 16, 32, 32, 32)
MEAN = (0.29010095242892997, 0.32808144844279574, 0.28696394422942517)
STD = (0.1829540508368939, 0.18656561047509476, 0.18447508988480435)
LR, MOMENTUM, WEIGHT_DECAY = 0.01, 0.9, 1e-4


def load_segment(root: Path) -> types.ModuleType:
    source = (root / "segment.py").read_text().replace("async=True", "non_blocking=True")
    module = types.ModuleType("segment")
    module.__file__ = str(root / "segment.py")
    exec(compile(source, module.__file__, "exec"), module.__dict__)  # noqa: S102 - the official file, run locally
    sys.modules["segment"] = module
    return module


def main() -> None:
    root, commit = official_checkout("I2I_OFFICIAL_DRN")
    import data_transforms
    import drn

    segment = load_segment(root)
    use_float64()
    drn.drn_d_22_golden = lambda pretrained=False, **kwargs: drn.DRN(
        drn.BasicBlock, [1, 1, 2, 2, 2, 2, 1, 1], arch="D", channels=CHANNELS, **kwargs)
    torch.manual_seed(0)
    model = segment.DRNSeg("drn_d_22_golden", CLASSES, pretrained=False)
    init = round_weights_to_half(model)

    g = torch.Generator().manual_seed(3)
    photo_u8 = images_u8(g, BATCH, 3, SIZE, SIZE)
    label = torch.randint(0, CLASSES, (BATCH, SIZE, SIZE), generator=g)
    label[torch.rand(BATCH, SIZE, SIZE, generator=g) < 0.2] = 255
    normalize = data_transforms.Normalize(MEAN, STD)
    x = torch.stack([normalize(img.double().div(255))[0] for img in photo_u8])

    model.train()
    optimizer = torch.optim.SGD(model.optim_parameters(), LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)
    criterion = (nn.NLLLoss2d if hasattr(nn, "NLLLoss2d") else nn.NLLLoss)(ignore_index=255)
    log_probs, scores = model(x)
    loss = criterion(log_probs, label)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()

    after = after_step(model, init)
    after["grad"] = {}  # SGD: the step (lr * (grad + wd * w)) is compared; the gradients are not kept
    save({
        "official_repo": "https://github.com/fyu/drn", "official_commit": commit, "dtype": "float64",
        "config": {"size": SIZE, "batch_size": BATCH, "n_classes": CLASSES, "base_channels": 1,
                   "pretrained_backbone": False, "mean": MEAN, "std": STD, "lr": LR, "momentum": MOMENTUM,
                   "weight_decay": WEIGHT_DECAY},
        "inputs": {"photo_u8": photo_u8, "label": label.to(torch.uint8)},
        "draws": {},
        "init": {"DRNSeg": init},
        "outputs": {"log_probs": log_probs.detach().clone(), "scores": scores.detach().clone()},
        "losses": {"CE": float(loss)},
        "after": {"DRNSeg": after},
    }, "segmenter")


if __name__ == "__main__":
    main()
