"""The segmenter (DRN-D-22) against fyu/drn segment.py: forward, loss and one SGD step from the official
weights.

Fixture made by record_segmenter.py: segment.py's DRNSeg over drn.py's DRN-D-22 (BasicBlock, layers
[1,1,2,2,2,2,1,1], arch D) at channels (1, 2, ..., 32) = i2i's base_channels 1, 4 classes, 32 px, batch 2,
20% of the label pixels 255 (ignored); NLLLoss2d on the log-softmax; SGD lr 0.01, momentum 0.9, weight
decay 1e-4 over base + seg. Outputs and the loss to 1e-6; weights and BatchNorm statistics after the step
to 1e-6 (an SGD step has no round-off sign to exclude). The official input is u8 / 255 normalised, i2i's
(A + 1) / 2 normalised with A = u8 / 127.5 - 1: equal to 1e-6 (checked), not to the bit, so the step runs
from the official network input.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from tests.golden.golden_fixtures import assert_close
from tests.golden.replay_cut_cyclegan_pix2pix import (
    assert_networks_after_step,
    build,
    load,
    to_float,
    train_iteration,
)


def _official_network_input(u8: torch.Tensor, fixture: dict[str, Any]) -> torch.Tensor:
    """segment.py's input: data_transforms.ToTensor (u8 / 255) then Normalize ((x - mean) / std)."""
    mean = torch.tensor(fixture["config"]["mean"], dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(fixture["config"]["std"], dtype=torch.float32).view(1, 3, 1, 1)
    return (u8.float().div(255) - mean) / std


def test_segmenter_step_equals_the_official_one() -> None:
    fixture = load("segmenter")
    method = build("segmenter", fixture)
    spec = method.optimizers()[0]
    assert (spec.kind, spec.lr, spec.momentum, spec.weight_decay) == ("sgd", 0.01, 0.9, 1e-4)  # i2i's defaults
    assert not method.net.up.weight.requires_grad  # the fixed bilinear upsampling is not trained
    photo_u8 = fixture["inputs"]["photo_u8"]
    batch = {"A": to_float(photo_u8), "label": fixture["inputs"]["label"].long()}
    official_input = _official_network_input(photo_u8, fixture)
    # i2i's (A + 1) / 2 normalised equals u8 / 255 normalised to one float32 ulp; BatchNorm at these widths
    # (one channel, 4 x 4 maps) amplifies an ulp ~200x, so the step below runs on the official numbers
    assert_close(method.normalize(batch["A"]), official_input, atol=1e-6, what="normalised input")
    method.normalize = lambda x: official_input  # type: ignore[method-assign]
    outputs: list[torch.Tensor] = []
    method.net.register_forward_hook(lambda module, inputs, output: outputs.append(output.detach()))
    terms = train_iteration(method, batch)
    assert_close(F.log_softmax(outputs[0], 1), fixture["outputs"]["log_probs"], what="log-probabilities")
    assert_close(terms["CE"], torch.tensor(fixture["losses"]["CE"]), what="cross-entropy")
    assert_networks_after_step(method, fixture, adam=False)
