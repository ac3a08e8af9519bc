"""Record tests/golden/starganv2.pt from the official StarGAN v2 code (clovaai/stargan-v2, CC BY-NC 4.0).

Run outside CI, against a checkout of the official repository (it needs munch, opencv-python and scikit-image
for core/wing.py's imports):

    I2I_OFFICIAL_STARGANV2=/tmp/official/stargan-v2 PYTHONPATH=$PWD python tests/golden/record_starganv2.py

Only numbers are saved. The official code runs in float64 (torch's default dtype: networks, seeded weights,
inputs). Tiny sizes: 32 px, first width 4, style_dim 8, latent_dim 4, max_conv_dim 8, 2 domains, batch 2. The
official networks take their first width from 2**14 // img_size; the script passes img_size as an int whose
floor-division of 2**14 gives DIM_IN (4) and that is 32 everywhere else, so the official modules are built as
they are at a width the fixture can hold. The mapping network's 512-wide hidden layers (fixed in the official
code) and the full-size FAN are too big to store: their weights are filled from a seed by `seeded_fill` (which
the test runs on i2i's networks with the same key names); the fixture stores per-tensor sums to show the fill is
the same, and a seeded subset of the mapping network's elements after its step. The stored initial weights are
rounded to float16-representable values in the official networks first (float16 stores them exactly); a step
is stored as after - initial in float32 (the tests add its storage rounding).

Settings recorded:
- "afhq": w_hpf 0, lambda_ds 2 (the reference's AFHQ recipe).
- "celeba_hq": w_hpf 1, lambda_ds 1 (losses, outputs and the generator's first step only), with masks from `stand_in_masks` (a formula of the image, standing in for
  the FAN in the training iteration so that the fixture stays small); the official generator adds the masked
  high-pass skips (32 px here) and the cycle uses the masks of the fake, as in the official compute_g_loss.
- "fan": the official FAN (seeded full-size weights) on one image: heat maps and masks (sub-sampled), and the
  official heat-map preprocessing on seeded synthetic heat maps.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

SIZE, DIM_IN, STYLE_DIM, LATENT_DIM, MAX_CONV_DIM, DOMAINS, BATCH = 32, 4, 8, 4, 8, 2, 2
MAPPING_SUBSET = 256  # elements per mapping-network tensor kept after the step
SEED = 7
FAN_GAIN = 0.5  # smaller weights for the 20-block FAN, so its heat maps stay near 1 (not 1e3)


class _Size(int):
    """img_size for the official constructors: 32, except that 2**14 // it is DIM_IN."""

    def __rfloordiv__(self, other: Any) -> int:
        return DIM_IN


def seeded_fill(state: dict[str, torch.Tensor], seed: int, gain: float = 2.0) -> dict[str, torch.Tensor]:
    """Deterministic weights for a state_dict, by sorted key: He-scaled convolution / linear weights, norm scales
    near 1, small biases, positive running variances; buffers such as the high-pass filter are left alone."""
    g = torch.Generator().manual_seed(seed)
    out = dict(state)
    for key in sorted(state):
        value = state[key]
        if key.endswith(("num_batches_tracked", "hpf.filter")):
            continue
        if key.endswith("running_var"):
            out[key] = torch.rand(value.shape, generator=g) + 0.5
        elif key.endswith("weight") and value.dim() >= 2:
            out[key] = torch.randn(value.shape, generator=g) * (gain / value[0].numel()) ** 0.5
        elif key.endswith("weight"):
            out[key] = 1 + 0.1 * torch.randn(value.shape, generator=g)
        else:
            out[key] = 0.1 * torch.randn(value.shape, generator=g)
    return out


def stand_in_masks(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Two (N, 1, 256, 256) masks in [0, 1] computed from the image, standing in for the FAN's in training."""
    grey = x.mean(dim=1, keepdim=True)
    up = F.interpolate(grey, size=(256, 256), mode="bilinear", align_corners=False)
    return torch.sigmoid(3 * up), torch.sigmoid(-3 * up)


def synthetic_heatmaps(seed: int) -> torch.Tensor:
    """(1, 98, 256, 256) heat maps: one Gaussian peak per landmark at a seeded place and width, plus noise."""
    g = torch.Generator().manual_seed(seed)
    centres = 40 + torch.rand(98, 2, generator=g) * 176
    widths = 4 + torch.rand(98, generator=g) * 12
    grid = torch.arange(256).to(torch.get_default_dtype())
    d2 = (grid[None, :, None] - centres[:, 0, None, None]) ** 2 + (grid[None, None, :] - centres[:, 1, None, None]) ** 2
    maps = torch.exp(-d2 / (2 * widths[:, None, None] ** 2))
    return (maps + 0.05 * torch.rand(98, 256, 256, generator=g))[None]


def inputs(seed: int) -> tuple[torch.Tensor, ...]:
    """Sources, two references (N, 3, SIZE, SIZE) in [-1, 1] and two latent codes, drawn from a seed."""
    g = torch.Generator().manual_seed(seed)
    images = [torch.rand(BATCH, 3, SIZE, SIZE, generator=g) * 2 - 1 for _ in range(3)]
    return (*images, *(torch.randn(BATCH, LATENT_DIM, generator=g) for _ in range(2)))


def mapping_subset(tensor: torch.Tensor, seed: int) -> torch.Tensor:
    """The element indices of a flattened tensor kept in the fixture."""
    g = torch.Generator().manual_seed(seed)
    return torch.randperm(tensor.numel(), generator=g)[:MAPPING_SUBSET]


def _official(root: Path) -> Any:
    sys.path.insert(0, str(root))
    import core.model as model  # noqa: F401 - official modules, imported from the checkout at record time
    import core.solver as solver
    import core.wing as wing

    return model, solver, wing


def _nets(model: Any, w_hpf: float) -> dict[str, torch.nn.Module]:
    size = _Size(SIZE)
    nets = {"generator": model.Generator(size, STYLE_DIM, MAX_CONV_DIM, w_hpf=w_hpf),
            "mapping_network": model.MappingNetwork(LATENT_DIM, STYLE_DIM, DOMAINS),
            "style_encoder": model.StyleEncoder(size, STYLE_DIM, DOMAINS, MAX_CONV_DIM),
            "discriminator": model.Discriminator(size, DOMAINS, MAX_CONV_DIM)}
    for k, net in enumerate(nets.values()):  # seeds SEED + 0 .. 3 in this order
        net.load_state_dict(seeded_fill(net.state_dict(), SEED + k))
    return nets


class _StandInFan(torch.nn.Module):
    def get_heatmap(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return stand_in_masks(x.detach())


KEEP_RTOL = 1e-9  # golden_fixtures.FLOAT64_RTOL: a gradient within it (of the network's largest) of 0 is round-off


@torch.no_grad()
def _round_to_half(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The network's float tensors rounded in place to float16-representable values; its state (float tensors as
    float16, exact)."""
    out = {}
    for key, value in net.state_dict().items():
        if value.is_floating_point() and not key.endswith("hpf.filter"):
            value.copy_(value.half().to(value.dtype))
            out[key] = value.half().clone()
        else:
            out[key] = value.clone()
    return out


def _snapshot(net: torch.nn.Module, name: str, initial: dict[str, torch.Tensor] | None,
              grads: bool = True) -> dict[str, torch.Tensor]:
    """Each parameter's step from `initial` (float32), or for the mapping network (its initial weights are not
    stored) a seeded subset of its values; with `grads`, `.keep`: where the gradient is not ~0 (Adam's first
    step has a round-off sign there)."""
    out = {}
    params = dict(net.named_parameters())
    scale = max((float(p.grad.abs().max()) for p in params.values() if p.grad is not None), default=0.0)
    for key, p in params.items():
        value, grad = p.detach().clone(), (p.grad.clone() if p.grad is not None else torch.zeros_like(p))
        if name == "mapping_network":
            index = mapping_subset(value, sum(map(ord, key)))
            value, grad = value.flatten()[index], grad.flatten()[index]
        else:
            value = (value - initial[key].to(value.dtype)).float()
        out[key] = value
        if grads:
            out[key + ".keep"] = grad.abs() > KEEP_RTOL * scale
    return out


def record_setting(model: Any, solver: Any, w_hpf: float, lambda_ds: float, full: bool) -> dict[str, Any]:
    """One official iteration; `full` False keeps only what depends on w_hpf (losses, outputs, G's first step)."""
    from munch import Munch

    torch.manual_seed(SEED)
    nets = _nets(model, w_hpf)
    initial = {name: _round_to_half(net) for name, net in nets.items() if name != "mapping_network"}
    initial["mapping_network_sums"] = {k: float(v.double().sum()) for k, v in nets["mapping_network"].state_dict().items()}
    x_real, x_ref, x_ref2, z, z2 = inputs(SEED + 10)
    y_org, y_trg = torch.tensor([0, 1]), torch.tensor([1, 0])
    args = Munch(lambda_reg=1.0, lambda_sty=1.0, lambda_ds=lambda_ds, lambda_cyc=1.0, w_hpf=w_hpf)
    m = Munch(**nets)
    if w_hpf > 0:
        m.fan = _StandInFan()
    ema = {k: copy.deepcopy(nets[k]) for k in ("generator", "mapping_network", "style_encoder")}
    optims = {k: torch.optim.Adam(net.parameters(), lr=1e-6 if k == "mapping_network" else 1e-4, betas=(0.0, 0.99),
                                  weight_decay=1e-4) for k, net in nets.items()}

    def reset() -> None:
        for o in optims.values():
            o.zero_grad()

    masks = m.fan.get_heatmap(x_real) if w_hpf > 0 else None
    record: dict[str, Any] = {"initial": initial, "inputs_seed": SEED + 10, "z": z, "z2": z2,
                              "input_sums": [float(t.double().sum()) for t in (x_real, x_ref, x_ref2)],
                              "y_org": y_org, "y_trg": y_trg, "w_hpf": w_hpf, "lambda_ds": lambda_ds}
    with torch.no_grad():
        s = nets["mapping_network"](z, y_trg)
        record["mapping_out"] = s
        record["style_encoder_out"] = nets["style_encoder"](x_ref, y_trg)
        record["generator_out"] = nets["generator"](x_real, s, masks=masks)
        record["discriminator_out"] = nets["discriminator"](x_real, y_org)
    x_real = x_real.clone()
    losses: dict[str, dict[str, float]] = {}
    for guide, kwargs in (("latent", {"z_trg": z}), ("ref", {"x_ref": x_ref})):
        loss, parts = solver.compute_d_loss(m, args, x_real, y_org, y_trg, masks=masks, **kwargs)
        reset()
        loss.backward()
        optims["discriminator"].step()
        losses[f"D_{guide}"] = dict(parts)
        if guide == "latent":
            record["D_after_latent"] = _snapshot(nets["discriminator"], "discriminator", initial["discriminator"])
    for guide, kwargs in (("latent", {"z_trgs": [z, z2]}), ("ref", {"x_refs": [x_ref, x_ref2]})):
        loss, parts = solver.compute_g_loss(m, args, x_real, y_org, y_trg, masks=masks, **kwargs)
        reset()
        loss.backward()
        stepped = ("generator", "mapping_network", "style_encoder") if guide == "latent" else ("generator",)
        for k in stepped:
            optims[k].step()
        losses[f"G_{guide}"] = dict(parts)
        if full or guide == "latent":
            record[f"G_after_{guide}"] = {k: _snapshot(nets[k], k, initial.get(k))
                                          for k in (stepped if full else ("generator",))}
    for k, shadow in ema.items():
        solver.moving_average(nets[k], shadow, beta=0.999)
    if full:
        record["D_after_ref"] = _snapshot(nets["discriminator"], "discriminator", initial["discriminator"],
                                          grads=False)
        # F, E: the same formula
        record["ema"] = {"generator": _snapshot(ema["generator"], "generator", initial["generator"], grads=False)}
    record["losses"] = losses
    return record


def record_fan(wing: Any) -> dict[str, Any]:
    torch.manual_seed(SEED)
    fan = wing.FAN().eval()
    fan.load_state_dict(seeded_fill(fan.state_dict(), SEED + 20, gain=FAN_GAIN))
    g = torch.Generator().manual_seed(SEED + 21)
    x = torch.rand(1, 3, 64, 64, generator=g) * 2 - 1  # the test draws it again from the seed
    with torch.no_grad():
        raw = fan.get_heatmap(x, b_preprocess=False)
        whole, inner = fan.get_heatmap(x)
    synthetic = wing.preprocess(synthetic_heatmaps(SEED + 22))
    return {"x_seed": SEED + 21, "x_sum": float(x.double().sum()), "heatmaps_sub8": raw[:, :, ::8, ::8].clone(),
            "masks_sub4": (whole[..., ::4, ::4].clone(), inner[..., ::4, ::4].clone()), "synthetic_seed": SEED + 22,
            "synthetic_masks_sub4": (synthetic[0][..., ::4, ::4].clone(), synthetic[1][..., ::4, ::4].clone()),
            "weight_sums": {k: float(v.double().sum()) for k, v in fan.state_dict().items()}}


def main() -> None:
    root = Path(os.environ["I2I_OFFICIAL_STARGANV2"])
    torch.set_default_dtype(torch.float64)
    model, solver, wing = _official(root)
    commit = os.environ.get("I2I_OFFICIAL_COMMIT") or subprocess.run(
        ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    fixture = {"official_repo": "https://github.com/clovaai/stargan-v2", "official_commit": commit, "dtype": "float64",
               "sizes": {"size": SIZE, "dim_in": DIM_IN, "style_dim": STYLE_DIM, "latent_dim": LATENT_DIM,
                         "max_conv_dim": MAX_CONV_DIM, "domains": DOMAINS, "seed": SEED},
               "afhq": record_setting(model, solver, 0.0, 2.0, full=True),
               "celeba_hq": record_setting(model, solver, 1.0, 1.0, full=False),
               "fan": record_fan(wing)}
    torch.save(fixture, Path(__file__).resolve().parent / "starganv2.pt")


if __name__ == "__main__":
    main()
