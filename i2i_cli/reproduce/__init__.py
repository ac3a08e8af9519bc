"""Reproducing a paper's table: recipes (data files) and the runner behind `i2i reproduce`."""

from i2i_cli.reproduce.recipes import Recipe, check_recipe, load_recipe, recipe_names
from i2i_cli.reproduce.runner import ReproduceOptions, estimated_gpu_hours, plan, reproduce

__all__ = ["Recipe", "ReproduceOptions", "check_recipe", "estimated_gpu_hours", "load_recipe", "plan",
           "recipe_names", "reproduce"]
