"""PatchNCE (Park et al., CUT, ECCV 2020): contrastive loss between patches of the output and the input.

For each sampled location, the output patch (query) must match the input patch at the same location
(positive) against the input patches at the other sampled locations of the same image (negatives).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from i2i_cli.models.losses.precision import upcast


def patch_nce(query: torch.Tensor, key: torch.Tensor, batch_size: int, temperature: float = 0.07) -> torch.Tensor:
    """Per-patch PatchNCE loss.

    query, key: (B * P, C) L2-normalised features of P patches per image (key gets no gradient).
    Returns (B * P,) cross-entropy losses; negatives come from the same image only.
    """
    key = key.detach()
    n, dim = query.shape
    positive = (query * key).sum(dim=1, keepdim=True)  # (B*P, 1)
    q = query.view(batch_size, -1, dim)
    k = key.view(batch_size, -1, dim)
    patches = q.shape[1]
    negatives = torch.bmm(q, k.transpose(1, 2))  # (B, P, P)
    # the positive sits on the diagonal: mask it out of the negatives (as the reference, with -10)
    eye = torch.eye(patches, device=query.device, dtype=torch.bool)[None]
    negatives = negatives.masked_fill(eye, -10.0).view(-1, patches)
    logits = torch.cat([positive, negatives], dim=1) / temperature
    target = torch.zeros(n, dtype=torch.long, device=query.device)
    return F.cross_entropy(upcast(logits), target, reduction="none")


class PatchNCELoss(nn.Module):
    def __init__(self, temperature: float = 0.07) -> None:
        super().__init__()
        self.temperature = temperature

    def forward(self, query: torch.Tensor, key: torch.Tensor, batch_size: int) -> torch.Tensor:
        return patch_nce(query, key, batch_size, self.temperature)
