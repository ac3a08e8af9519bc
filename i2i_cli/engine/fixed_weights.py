"""Load the fixed pretrained networks a method declares (e.g. VGG16 for F/LSeSim) through the weights registry."""

from __future__ import annotations

import os

from i2i_cli.errors import WeightsError
from i2i_cli.weights import ResolvedWeights, load_state_dict, resolve


def load_pretrained_modules(method, weights_dir: str | os.PathLike[str] | None = None,
                            names: dict[str, str] | None = None) -> list[ResolvedWeights]:
    """Resolve and load every module of `names` (default `method.pretrained_weights()`); return what was used."""
    used: list[ResolvedWeights] = []
    for attribute, weights_name in (method.pretrained_weights() if names is None else names).items():
        resolved = resolve(weights_name, weights_dir=weights_dir)
        module = getattr(method, attribute)
        try:
            module.load_pretrained_state_dict(load_state_dict(resolved.path))
        except (KeyError, RuntimeError, ValueError) as exc:
            raise WeightsError(
                f"{resolved.path}: does not fit {type(module).__name__} ({str(exc).splitlines()[0][:200]}); "
                f"expected the official {weights_name} file"
            ) from exc
        used.append(resolved)
    return used
