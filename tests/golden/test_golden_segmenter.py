"""The segmenter (DRN-D-22) against fyu/drn segment.py: forward, loss and one SGD step from the official
weights.

Fixture made by record_segmenter.py: segment.py's DRNSeg over drn.py's DRN-D-22 (BasicBlock, layers
[1,1,2,2,2,2,1,1], arch D) at channels (1, 2, ..., 32) = i2i's base_channels 1, 4 classes, 32 px, batch 2,
20% of the label pixels 255 (ignored); NLLLoss2d on the log-softmax; SGD lr 0.01, momentum 0.9, weight
decay 1e-4 over base + seg. Recorded and replayed in float64: outputs and the loss to 1e-9 of their largest;
weights and BatchNorm statistics after the step to 1e-9 of their largest plus the float32 storage of the step
(an SGD step has no round-off sign to exclude). The official input is u8 / 255 normalised with
data_transforms.Normalize's float32 mean and std, i2i's (A + 1) / 2 normalised with A = u8 / 127.5 - 1 (its
mean and std buffers are float32 too): equal to 1e-9, not to the bit, and in float64 that difference stays far
inside the tolerance through the BatchNorms, so the step runs from i2i's own input.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from tests.golden.golden_fixtures import assert_float64_close, float64
from tests.golden.replay_cut_cyclegan_pix2pix import (
    assert_networks_after_step,
    build,
    load,
    to_float,
    train_iteration,
)


def _official_network_input(u8: torch.Tensor, fixture: dict[str, Any]) -> torch.Tensor:
    """segment.py's input: data_transforms.ToTensor (u8 / 255, in float64 here) then Normalize ((x - mean) / std,
    Normalize holds mean and std as float32)."""
    mean = torch.tensor(fixture["config"]["mean"], dtype=torch.float32).double().view(1, 3, 1, 1)
    std = torch.tensor(fixture["config"]["std"], dtype=torch.float32).double().view(1, 3, 1, 1)
    return (u8.double().div(255) - mean) / std


@float64()
def test_segmenter_step_equals_the_official_one() -> None:
    fixture = load("segmenter")
    assert fixture["dtype"] == "float64"
    method = build("segmenter", fixture)
    spec = method.optimizers()[0]
    assert (spec.kind, spec.lr, spec.momentum, spec.weight_decay) == ("sgd", 0.01, 0.9, 1e-4)  # i2i's defaults
    assert not method.net.up.weight.requires_grad  # the fixed bilinear upsampling is not trained
    photo_u8 = fixture["inputs"]["photo_u8"]
    batch = {"A": to_float(photo_u8), "label": fixture["inputs"]["label"].long()}
    official_input = _official_network_input(photo_u8, fixture)
    # i2i's (A + 1) / 2 normalised equals u8 / 255 normalised to a float64 ulp or two; BatchNorm at these
    # widths (one channel, 4 x 4 maps) amplifies that ~200x, still ~1e-13
    assert_float64_close(method.normalize(batch["A"]), official_input, what="normalised input")
    outputs: list[torch.Tensor] = []
    method.net.register_forward_hook(lambda module, inputs, output: outputs.append(output.detach()))
    terms = train_iteration(method, batch)
    assert_float64_close(F.log_softmax(outputs[0], 1), fixture["outputs"]["log_probs"], what="log-probabilities")
    assert_float64_close(terms["CE"], torch.tensor(fixture["losses"]["CE"]), what="cross-entropy")
    assert_networks_after_step(method, fixture, adam=False)
