"""Recipes: a paper's table as data (one TOML file per paper in i2i_cli/reproduce/recipes/).

A recipe names the dataset (an `i2i data download` name), one row per trained model (method, the options the
paper used, its schedule), the evaluation protocol (metrics, FID mode, best or last checkpoint, how often to
evaluate, evaluation seeds, segmenter) and the published numbers with their source. Only numbers checked in
the paper or the official README are written down; a row whose number could not be checked has none.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import tomllib

from i2i_cli.errors import ConfigError

RECIPES_PACKAGE = "i2i_cli.reproduce"
RECIPES_FOLDER = "recipes"


@dataclass(frozen=True)
class Published:
    """A published value, its spread where the source gives one, and where it was read."""

    value: float
    spread: float | None
    source: str


@dataclass(frozen=True)
class Row:
    """One trained model of the table."""

    name: str
    method: str
    options: dict[str, Any]
    published: dict[str, Published]  # value key (fid, mean_iou, ...) -> number
    epochs: float | None = None  # None: the method's own schedule (the paper's, see the method card)
    steps: int | None = None  # instead of epochs (StarGAN v2's 100k iterations are its default already)


@dataclass(frozen=True)
class Protocol:
    """How the paper scored its models."""

    metrics: tuple[str, ...]  # folder metrics of a translation run (fid, kid); multidomain / segmenter runs: own
    keys: tuple[str, ...]  # the value keys the table shows
    mode: str = "clean"  # FID network and resize (legacy_pytorch = pytorch-fid, stargan_v2 = its metrics/fid.py)
    select: str = "last"  # best | last: the best evaluation seen during training, or the final checkpoint
    best_key: str = ""  # select = best: the value that ranks checkpoints
    eval_every: str = ""  # --eval-every during training ("" : only the final checkpoint)
    eval_seeds: int = 1  # evaluation repeated with seeds 0..n-1 (StarGAN v2: 10 measurements)
    segmenter: str | None = None  # the FCN-score's segmenter (paired labels -> photo)
    note: str = ""  # what differs from the paper's own evaluation code, said in the table


@dataclass(frozen=True)
class Recipe:
    name: str
    title: str
    paper: str
    code: str
    dataset: str
    gpu_hours: float  # estimated for the full schedule, all rows, one seed, one modern GPU
    protocol: Protocol
    rows: tuple[Row, ...]
    gpu_hours_note: str = ""  # where the estimate comes from
    verification: str = ""  # which numbers were checked where, and which were left out
    path: Path = field(default=Path(), compare=False)


def recipe_files() -> list[Path]:
    folder = resources.files(RECIPES_PACKAGE) / RECIPES_FOLDER
    return sorted(Path(str(p)) for p in folder.iterdir() if p.name.endswith(".toml"))


def recipe_names() -> list[str]:
    return [p.stem for p in recipe_files()]


def load_recipe(name_or_path: str | Path) -> Recipe:
    """A shipped recipe by name, or a recipe file; ConfigError naming the file and the fix when it is wrong."""
    path = Path(name_or_path)
    if not path.suffix:
        known = {p.stem: p for p in recipe_files()}
        if str(name_or_path) not in known:
            raise ConfigError(f"unknown recipe '{name_or_path}'; known: {', '.join(known)} (see `i2i reproduce list`)")
        path = known[str(name_or_path)]
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: not a readable TOML recipe ({exc}); fix the file") from None
    try:
        return _parse(data, path)
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"{path}: {exc}; see docs/reproduce.md for the recipe format") from None


def _parse(data: dict[str, Any], path: Path) -> Recipe:
    proto = dict(data["protocol"])
    protocol = Protocol(metrics=tuple(proto.pop("metrics", ())), keys=tuple(proto.pop("keys")), **proto)
    rows = tuple(_row(r) for r in data["rows"])
    return Recipe(name=path.stem, title=data["title"], paper=data["paper"], code=data["code"],
                  dataset=data["dataset"], gpu_hours=float(data["gpu_hours"]), protocol=protocol, rows=rows,
                  gpu_hours_note=data.get("gpu_hours_note", ""), verification=data.get("verification", ""),
                  path=path)


def _row(r: dict[str, Any]) -> Row:
    published = {k: Published(float(v["value"]), float(v["spread"]) if "spread" in v else None, str(v["source"]))
                 for k, v in r.get("published", {}).items()}
    unknown = set(r) - {"name", "method", "options", "published", "epochs", "steps"}
    if unknown:
        raise ValueError(f"row {r.get('name')}: unknown fields {', '.join(sorted(unknown))}")
    return Row(str(r["name"]), str(r["method"]), dict(r.get("options", {})), published, r.get("epochs"), r.get("steps"))


def check_recipe(recipe: Recipe) -> None:
    """Everything a recipe names exists: the dataset, each method and option, the metrics and value keys, a
    source for every published number. Raises ConfigError naming the recipe file."""
    from i2i_cli.config import resolve_config
    from i2i_cli.datasets_download import DATASETS
    from i2i_cli.evaluation.during_training import better
    from i2i_cli.evaluation.metrics import metric_names

    where = str(recipe.path)
    if recipe.dataset not in DATASETS:
        raise ConfigError(f"{where}: dataset '{recipe.dataset}' is not an `i2i data download` name")
    unknown = [m for m in recipe.protocol.metrics if m not in metric_names()]
    if unknown:
        raise ConfigError(f"{where}: unknown metrics {', '.join(unknown)}; choose from {', '.join(metric_names())}")
    if recipe.protocol.select not in ("best", "last") or (recipe.protocol.select == "best"
                                                          and not recipe.protocol.eval_every):
        raise ConfigError(f"{where}: select is best (with eval_every) or last")
    for key in (*recipe.protocol.keys, *([recipe.protocol.best_key] if recipe.protocol.best_key else [])):
        better(key)  # a value key i2i's evaluations report
    for row in recipe.rows:
        resolve_config(row.method, explicit=row.options)
        for key, number in row.published.items():
            if key not in recipe.protocol.keys or not number.source:
                raise ConfigError(f"{where}: row {row.name}: published {key} needs a key of the table and a source")
