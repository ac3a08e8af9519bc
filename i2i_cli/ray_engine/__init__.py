"""The Ray engine: translate and evaluate on a Ray cluster (or a local Ray), from local folders or object
storage, with the same translator, tiling and naming code as the local engine (i2i_cli.inference).

Ray is the optional extra `i2i[ray]`: nothing here imports it at module level, so the package imports without
it and `--engine ray` answers with the usual one-line error naming the extra."""

from i2i_cli.ray_engine.cluster import RayOptions
from i2i_cli.ray_engine.evaluate import evaluate_on_ray
from i2i_cli.ray_engine.translate import translate_on_ray

__all__ = ["RayOptions", "evaluate_on_ray", "translate_on_ray"]
