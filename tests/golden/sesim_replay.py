"""Replaying the official F-LSeSim step (fixtures fsesim.pt / lsesim.pt) with i2i's FSeSim / LSeSim.

The fixture's networks are loaded in the official key layout; the tiny VGG16 of the recording replaces i2i's
trunk (same torchvision indices, tiny widths); the official query locations and colour-jitter draws are handed
to i2i in the order the official code drew them. The fixtures are float64: the tests build and run i2i inside
golden_fixtures.float64().
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from i2i_cli.engine.trainer import _optimizer
from i2i_cli.models.base import Progress, TranslationMethod
from i2i_cli.models.losses import spatial_correlative
from i2i_cli.models.losses.spatial_correlative import JitterDraw, LearnedSimilarityHead
from i2i_cli.models.methods import sesim
from i2i_cli.models.methods.sesim import FSeSim
from tests.golden.golden_fixtures import assert_float64_close, assert_float64_step_close


def tiny_vgg(state: dict[str, torch.Tensor]) -> nn.Sequential:
    """torchvision's vgg16().features up to the last recorded conv (+ its ReLU), with the recorded widths."""
    last = max(int(k.split(".")[0]) for k in state)
    modules: list[nn.Module] = []
    for index in range(last + 2):
        weight = state.get(f"{index}.weight")
        if weight is not None:
            conv = nn.Conv2d(weight.shape[1], weight.shape[0], 3, padding=1)
            conv.load_state_dict({"weight": weight, "bias": state[f"{index}.bias"]})
            modules.append(conv)
        elif f"{index - 1}.weight" in state:
            modules.append(nn.ReLU())
        else:
            modules.append(nn.MaxPool2d(2, 2))
    return nn.Sequential(*modules).requires_grad_(False)


def head_state(official: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The official conv_i.N keys (inside its loss module) -> i2i's heads.i.N."""
    return {"heads." + k[len("conv_"):]: v for k, v in official.items() if k.startswith("conv_")}


def build(fixture: dict[str, Any], cls: type[FSeSim]) -> FSeSim:
    """The i2i method holding the official weights, in the default dtype (float64 in golden_fixtures.float64())."""
    o = fixture["options"]
    config = cls.config_class(ngf=o["ngf"], ndf=o["ndf"], lr=o["lr"], beta1=o["beta1"], beta2=o["beta2"],
                              num_patches=int(o["patch_nums"]), patch_size=o["patch_size"], loss_mode=o["loss_mode"],
                              use_norm=o["use_norm"], nce_T=o["T"], lambda_spatial=o["lambda_spatial"],
                              gan_mode=o["gan_mode"])
    method = cls(config)
    method.G.load_state_dict(fixture["before"]["G"])
    method.D.load_state_dict(fixture["before"]["D"])
    method.vgg.features = tiny_vgg(fixture["vgg_features"])
    if config.learned_head:
        state = head_state(fixture["before"]["F"])
        widths = [state[f"heads.{i}.0.weight"].shape[1] for i in range(len(method.layer_names))]
        method.head = LearnedSimilarityHead(widths)
        method.head.load_state_dict(state)
    return method.to(torch.get_default_dtype())


def jitter_draw(recorded: dict[str, torch.Tensor]) -> JitterDraw:
    factors = [None if torch.isnan(f) else float(f) for f in recorded["factors"]]
    return JitterDraw(tuple(int(i) for i in recorded["order"]), *factors)


def replay_draws(monkeypatch: pytest.MonkeyPatch, fixture: dict[str, Any]
                 ) -> tuple[list[torch.Tensor], list[JitterDraw]]:
    """i2i's query-location and jitter draws return the official ones, in the official call order; returns
    the lists they are taken from (empty once i2i has drawn as often as the official code)."""
    ids = list(fixture["patch_ids"])
    draws = [jitter_draw(d) for d in fixture["jitter_draws"]]

    def next_ids(h: int, w: int, num_patches: int, device: Any = "cpu") -> torch.Tensor:
        drawn = ids.pop(0)
        assert len(drawn) == min(num_patches, h * w) and int(drawn.max()) < h * w, "query draw out of step"
        return drawn.to(device)

    monkeypatch.setattr(sesim, "sample_query_ids", next_ids)
    monkeypatch.setattr(spatial_correlative, "draw_jitter", lambda ranges=None: draws.pop(0))
    return ids, draws


def assert_step_equals_the_official_one(ours: dict[str, torch.Tensor], before: dict[str, torch.Tensor],
                                       steps: dict[str, torch.Tensor], my_grads: dict[str, torch.Tensor],
                                       their_grads: dict[str, torch.Tensor], what: str) -> None:
    """Gradients to FLOAT64_RTOL of the network's largest (one that is zero in exact arithmetic, a bias before a
    mean-centring or an instance norm, is then ~0 on both sides) and the weights after one Adam step (except
    where the gradient is ~0: golden_fixtures' float64 policy)."""
    scale = max(float(g.abs().max()) for g in their_grads.values())
    for key, grad in my_grads.items():
        assert_float64_close(grad, their_grads[key], what=f"{what} grad {key}", scale=scale)
        assert_float64_step_close(ours[key], before[key], steps[key], their_grads[key], scale, what=f"{what} {key}")


def iteration(method: TranslationMethod, batch: dict[str, torch.Tensor]
              ) -> tuple[dict[str, float], dict[str, Any], dict[str, dict[str, torch.Tensor]]]:
    """One training iteration as the trainer runs it; returns the loss terms, the cache and each stepped
    network's gradients."""
    optimizers = {s.name: _optimizer(s, torch.device("cpu")) for s in method.optimizers()}  # the trainer's own
    cache: dict[str, Any] = {}
    logged: dict[str, float] = {}
    grads: dict[str, dict[str, torch.Tensor]] = {}
    for phase in method.phases(Progress()):
        frozen = [getattr(method, name) for name in phase.frozen]
        for module in frozen:
            module.requires_grad_(False)
        terms = phase.compute(batch, cache)
        for name in phase.optimizers:
            optimizers[name].zero_grad(set_to_none=True)
        sum(terms.values()).backward()
        for name in phase.optimizers:
            grads[name] = {k: p.grad.clone() for k, p in getattr(method, name).named_parameters()}
            optimizers[name].step()
        for module in frozen:
            module.requires_grad_(True)
        logged.update({k: float(v.detach()) for k, v in terms.items()})
    return logged, cache, grads
