"""One i2i training iteration on a golden fixture of the pix2pix / CycleGAN / CUT / FastCUT / segmenter
recorders, and the comparisons of its results with the official ones (see recording_cut_cyclegan_pix2pix.py
for how the fixtures store weights, steps and images)."""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from i2i_cli.models import registry
from i2i_cli.models.base import Progress, TranslationMethod, set_requires_grad
from i2i_cli.pretrained import OFFICIAL_NETWORKS, load_official_networks
from tests.golden.golden_fixtures import (
    FLOAT32_STORAGE,
    assert_adam_step_close,
    assert_close,
    assert_float64_close,
    assert_float64_step_close,
    load_fixture,
)


def to_float(u8: torch.Tensor) -> torch.Tensor:
    """uint8 -> [-1, 1] in the default dtype (float64 inside golden_fixtures.float64()), as the recorders do."""
    return u8.to(torch.get_default_dtype()) / 127.5 - 1


def unpack(packed: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The dict of tensors that recording_cut_cyclegan_pix2pix.pack flattened."""
    offsets = dict.fromkeys(packed["data"], 0)
    out = {}
    for key, shape, dtype in zip(packed["keys"], packed["shapes"], packed["dtypes"], strict=True):
        n = int(torch.Size(shape).numel())
        out[key] = packed["data"][dtype][offsets[dtype]: offsets[dtype] + n].reshape(shape)
        offsets[dtype] += n
    return out


def _unpack_tree(tree: Any) -> Any:
    if isinstance(tree, dict):
        if tree.get("packed") is True:
            return unpack(tree)
        return {k: _unpack_tree(v) for k, v in tree.items()}
    return tree


def load(name: str) -> dict[str, Any]:
    """A fixture of these recorders with its weights, gradients and steps unpacked."""
    fixture = load_fixture(name)
    return {k: _unpack_tree(v) if k in ("init", "after") else v for k, v in fixture.items()}


def build(name: str, fixture: dict[str, Any], **extra: Any) -> TranslationMethod:
    """The i2i method with the fixture's configuration, holding the official initial weights, in the default
    dtype (float64 inside golden_fixtures.float64())."""
    cls = registry.method_class(name)
    known = {f.name for f in dataclasses.fields(cls.config_class)}
    values = {k: v for k, v in fixture["config"].items() if k in known}
    values.setdefault("load_size", values.get("size", 256))
    method = cls(dataclasses.replace(cls.config_class(), **values, **extra))
    dtype = torch.get_default_dtype()
    states = {net: {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
              for net, state in fixture["init"].items()}
    load_official_networks(method, states, "golden fixture")
    return method.to(dtype).train()


def optimizers(method: TranslationMethod) -> dict[str, torch.optim.Optimizer]:
    """The optimizers the trainer builds from the method's specs (its schedule is 1 at the first step): the
    product's own, fused kernels included, against the official code's plain Adam / SGD loop."""
    from i2i_cli.engine.trainer import _optimizer

    return {spec.name: _optimizer(spec, torch.device("cpu")) for spec in method.optimizers()}


def train_iteration(method: TranslationMethod, batch: dict[str, torch.Tensor],
                    cache: dict[str, Any] | None = None) -> dict[str, torch.Tensor]:
    """One iteration as the trainer runs it: per phase, freeze, zero the phase's gradients, back-propagate the
    sum of its terms, step. Returns every phase's terms (detached); `cache` may carry draws to replay."""
    cache = {} if cache is None else cache
    opts = optimizers(method)
    terms_out: dict[str, torch.Tensor] = {}
    for phase in method.phases(Progress(step=0, total_steps=1)):
        frozen = [getattr(method, name) for name in phase.frozen]
        set_requires_grad(frozen, False)
        for name in phase.optimizers:
            opts[name].zero_grad(set_to_none=True)
        terms = phase.compute(batch, cache)
        sum(terms.values()).backward()
        for name in phase.optimizers:
            opts[name].step()
        set_requires_grad(frozen, True)
        terms_out.update({k: v.detach() for k, v in terms.items()})
    return terms_out


# Float32 round-off of a gradient, relative to the largest gradient of the same module (a conv's weight and
# bias): the two codes sum in different orders (and the thread count changes the order), and InstanceNorm
# (1 / std), PatchNCE's 1 / 0.07 and netF's L2 normalisation amplify that.
GRAD_RTOL = 1e-5
# A bias just before an InstanceNorm has gradient 0 in exact arithmetic; in float32 both codes leave noise
# there (a sum of many terms), up to ~2e-4 of its weight's largest gradient. Such a tensor (official
# gradient below ZERO_RTOL of its module's largest) must be ~0 in i2i too; its Adam step (the sign of the
# noise) is not compared.
ZERO_RTOL = 1e-3


def _module_scales(grads: dict[str, torch.Tensor]) -> dict[str, float]:
    """Per parameter: the largest official gradient among the parameters of its module (at least 1e-12)."""
    by_module: dict[str, float] = {}
    for key, grad in grads.items():
        owner = key.rpartition(".")[0]
        by_module[owner] = max(by_module.get(owner, 1e-12), float(grad.abs().max()))
    return {key: by_module[key.rpartition(".")[0]] for key in grads}


def assert_networks_after_step(method: TranslationMethod, fixture: dict[str, Any], adam: bool = True) -> None:
    """The float64 policy of golden_fixtures for float64 fixtures, the float32 tolerances below otherwise."""
    if fixture.get("dtype") == "float64":
        _assert_networks_after_step_float64(method, fixture, adam)
    else:
        _assert_networks_after_step_float32(method, fixture, adam)


def _assert_networks_after_step_float64(method: TranslationMethod, fixture: dict[str, Any], adam: bool) -> None:
    """Gradients to FLOAT64_RTOL of their module's largest (a gradient that is zero in exact arithmetic, e.g. a
    bias before an InstanceNorm, is then ~0 on both sides); weights after the step (Adam: except where the
    gradient is ~0) and buffers to FLOAT64_RTOL of the tensor's largest, plus the float32 storage of the step."""
    mapping = OFFICIAL_NETWORKS[method.name]
    for net, recorded in fixture["after"].items():
        module = getattr(method, mapping[net])
        params = dict(module.named_parameters())
        state = module.state_dict()
        scales = _module_scales(recorded["grad"])
        for key, grad in recorded["grad"].items():
            mine = params[key].grad
            assert mine is not None, f"net{net}.{key}: no gradient in i2i, the official code has one"
            assert_float64_close(mine, grad, what=f"net{net}.{key} gradient", scale=scales[key])
        for key, step in recorded["step"].items():
            before = fixture["init"][net][key]
            if adam and key in recorded["grad"]:
                assert_float64_step_close(state[key], before, step, recorded["grad"][key], scales[key],
                                          what=f"net{net}.{key}")
            else:
                expected = before.double() + step.double()
                assert_float64_close(state[key], expected, what=f"net{net}.{key} after the step",
                                     slack=FLOAT32_STORAGE * step.double().abs())
        for key, value in recorded["buffers"].items():
            if value.is_floating_point():
                assert_float64_close(state[key], value, what=f"net{net}.{key} after the step")
            else:
                assert torch.equal(state[key], value), f"net{net}.{key} after the step"


def _assert_networks_after_step_float32(method: TranslationMethod, fixture: dict[str, Any], adam: bool) -> None:
    """Gradients (to GRAD_RTOL of their module's largest; ~0 ones to ZERO_RTOL), weights after the step and
    buffers (BatchNorm statistics, 1e-6) equal the official ones. Adam: 1e-5, except elements whose gradient
    is ~0, i.e. within that round-off, where Adam's first step (lr * g / |g|) takes the round-off's sign.
    SGD: 1e-6."""
    mapping = OFFICIAL_NETWORKS[method.name]
    for net, recorded in fixture["after"].items():
        module = getattr(method, mapping[net])
        params = dict(module.named_parameters())
        state = module.state_dict()
        scales = _module_scales(recorded["grad"])
        tolerance = {k: GRAD_RTOL * scale for k, scale in scales.items()}
        zero = {k for k, g in recorded["grad"].items() if float(g.abs().max()) <= ZERO_RTOL * scales[k]}
        for key, grad in recorded["grad"].items():
            mine = params[key].grad
            assert mine is not None, f"net{net}.{key}: no gradient in i2i, the official code has one"
            if key in zero:
                assert_close(mine, torch.zeros_like(mine), atol=ZERO_RTOL * scales[key], what=f"net{net}.{key} ~0 gradient")
            else:
                assert_close(mine, grad, atol=tolerance[key], what=f"net{net}.{key} gradient")
        for key, step in recorded["step"].items():
            expected = fixture["init"][net][key].float() + step.float()
            if adam and key in zero:
                continue
            if adam and key in recorded["grad"]:
                assert_adam_step_close(state[key], expected, recorded["grad"][key], grad_floor=tolerance[key])
            else:
                assert_close(state[key], expected, atol=1e-6, what=f"net{net}.{key} after the step")
        for key, value in recorded["buffers"].items():
            assert_close(state[key], value, atol=1e-6, what=f"net{net}.{key} after the step")
