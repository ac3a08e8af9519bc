"""Per-pixel error maps of content losses, and the aligned-vs-misaligned analysis of the F-LSeSim paper.

For a source x (e.g. a label map) and a target y (e.g. the matching photo), each loss gives an error per
location, upsampled to the image size. With `misalign="half"` the target is the paper's test target: its left
half is y, its right half is misaligned (y's right half shifted by a quarter of the width, or another image's
right half). A loss that measures structure and not appearance has low error on the left and high error on
the right: the separation is mean(right) / mean(left).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from i2i_cli.data.images import list_images, load_image, split_halves, to_tensor
from i2i_cli.errors import ConfigError, I2IError

# A loss map: images (1, 3, H, W) in [-1, 1] -> errors (h, w) at the loss's own resolution.
MapFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class LossMapper:
    name: str
    fn: MapFn
    note: str = ""  # what it was computed with, shown in the figure and the JSON


@dataclass
class LossResult:
    name: str
    map: np.ndarray  # (H, W)
    mean: float
    aligned: float | None = None
    misaligned: float | None = None
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.aligned is None or self.misaligned is None:
            return None
        return self.misaligned / max(self.aligned, 1e-12)

    def to_json(self) -> dict[str, Any]:
        return {"mean": self.mean, "aligned": self.aligned, "misaligned": self.misaligned, "ratio": self.ratio,
                "note": self.note}


@dataclass
class PairResult:
    x: str
    y: str
    target: np.ndarray  # the image the maps compare x with (y, or the half-misaligned y)
    source: np.ndarray
    losses: list[LossResult] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"x": self.x, "y": self.y, "losses": {r.name: r.to_json() for r in self.losses}}


def l1_map(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """|x - y| averaged over channels, images in [0, 1] (inputs in [-1, 1]): (H, W)."""
    return ((x - y).abs() / 2).mean(dim=1)[0]


FEATURE_LAYERS = ("relu3_1", "relu4_1", "relu4_3")  # the F-LSeSim paper's layers
MIN_FEATURE_SIDE = 32  # below this relu4_3 has fewer than 4 x 4 locations: no structure left to compare


def _vgg(context: dict[str, Any]) -> Any:
    """VGG16 (ImageNet weights from the registry), built once per analysis and shared by the losses."""
    if "vgg" not in context:
        from i2i_cli.models.networks.vgg import VGG16Features
        from i2i_cli.weights import load_state_dict, resolve

        resolved = resolve("vgg16", weights_dir=context.get("weights_dir"))
        net = VGG16Features(FEATURE_LAYERS)
        net.load_pretrained_state_dict(load_state_dict(resolved.path))
        context["vgg"] = net.to(context.get("device", "cpu")).eval()
        context["vgg_weights"] = resolved
    return context["vgg"]


def _feature_mapper(name: str, fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], note: str
                    ) -> Callable[[dict[str, Any]], LossMapper]:
    """A loss computed per VGG layer, each layer's map brought to the finest layer's size, then averaged."""

    def factory(context: dict[str, Any]) -> LossMapper:
        vgg = _vgg(context)

        def mapper(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            fx, fy = vgg(x), vgg(y)
            size = fx[FEATURE_LAYERS[0]].shape[-2:]
            maps = [F.interpolate(fn(fx[n], fy[n])[None, None], size=size, mode="bilinear", align_corners=False)[0, 0]
                    for n in FEATURE_LAYERS]
            return torch.stack(maps).mean(0)

        return LossMapper(name, mapper, note)

    return factory


def _perceptual(fx: torch.Tensor, fy: torch.Tensor) -> torch.Tensor:
    from i2i_cli.models.losses.location_maps import perceptual_map

    return perceptual_map(fx, fy)


def _patchnce(fx: torch.Tensor, fy: torch.Tensor) -> torch.Tensor:
    from i2i_cli.models.losses.location_maps import patchnce_map

    return patchnce_map(fx, fy)


def _provided(checkpoint: Any) -> tuple[str, tuple[str, ...]]:
    """(method name, the loss maps its class declares) of the run at `checkpoint`, read from its config."""
    from i2i_cli.engine.checkpoint import find_run, read_run_config
    from i2i_cli.models import registry
    from i2i_cli.models.base import LossMaps

    name = read_run_config(find_run(checkpoint)[0]).method
    try:
        cls = registry.method_class(name)
    except KeyError:
        return name, ()
    return name, cls.loss_map_names if issubclass(cls, LossMaps) else ()


def default_losses(checkpoint: Any = None) -> list[str]:
    """The losses `i2i errormap` draws without --losses: the fixed ones, then those only --checkpoint's run has."""
    names = ["l1", "perceptual", "patchnce", "fsesim"]
    if checkpoint is not None:
        names += [n for n in _provided(checkpoint)[1] if n not in names]
    return names


def _run_map(context: dict[str, Any], loss: str) -> LossMapper | None:
    """`loss` with --checkpoint's trained pieces (the run's method gives it), or None when it has none."""
    from i2i_cli.models.base import LossMaps

    checkpoint = context.get("checkpoint")
    if checkpoint is None or loss not in _provided(checkpoint)[1]:
        return None
    if "run_maps" not in context:
        from i2i_cli.engine.checkpoint import load_for_inference
        from i2i_cli.engine.fixed_weights import load_pretrained_modules

        method = load_for_inference(checkpoint, device=context.get("device", "cpu")).method
        assert isinstance(method, LossMaps)  # its class declares the loss (_provided)
        load_pretrained_modules(method, context.get("weights_dir"))  # the fixed networks its maps read (VGG16)
        context["run_maps"] = method.loss_maps(Path(str(checkpoint)).name)
    found = context["run_maps"].get(loss)
    return LossMapper(loss, found.fn, found.note) if found is not None else None


def _methods_giving(loss: str) -> list[str]:
    from i2i_cli.models import registry
    from i2i_cli.models.base import LossMaps

    classes = {n: registry.method_class(n) for n in registry.list_methods()}
    return [n for n, cls in classes.items() if issubclass(cls, LossMaps) and loss in cls.loss_map_names]


def _needs_a_run(loss: str) -> Callable[[dict[str, Any]], LossMapper]:
    """A loss that exists only with a trained run: the error naming the methods that have it."""

    def factory(context: dict[str, Any]) -> LossMapper:
        wanted = " or ".join(_methods_giving(loss))
        if context.get("checkpoint") is None:
            raise ConfigError(f"--losses {loss}: pass --checkpoint RUN of a {wanted} run")
        name = _provided(context["checkpoint"])[0]
        raise ConfigError(f"--losses {loss}: --checkpoint is a {name} run; it needs a {wanted} run")

    return factory


def _fsesim_mapper(context: dict[str, Any]) -> LossMapper:
    """FSeSim without a run: fixed VGG16 self-similarities, every location a query, the official options."""
    from i2i_cli.models.losses.spatial_correlative import layers_map
    from i2i_cli.models.methods.sesim import FSeSimConfig

    vgg = _vgg(context)
    c = FSeSimConfig()
    similarity = "cosine" if c.use_norm else "tanh(dot/10)"
    note = f"{similarity}, top {c.top_fraction:g}, {c.loss_mode}, window {c.patch_size}"

    def mapper(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        fx, fy = vgg(x), vgg(y)
        return layers_map([fx[n] for n in FEATURE_LAYERS], [fy[n] for n in FEATURE_LAYERS], c.patch_size,
                          c.loss_mode, c.use_norm, c.top_fraction)

    return LossMapper("fsesim", mapper, f"VGG16 {'/'.join(FEATURE_LAYERS)}, {note}")


# Each loss without a run's own pieces; a run whose method gives a loss of that name (LossMaps) replaces it.
MAPPERS: dict[str, Callable[[dict[str, Any]], LossMapper]] = {
    "l1": lambda ctx: LossMapper("l1", l1_map, "pixel L1, mean over RGB"),
    "perceptual": _feature_mapper("perceptual", _perceptual, "VGG16 relu3_1/4_1/4_3"),
    "patchnce": _feature_mapper("patchnce", _patchnce, "VGG16 features, T 0.07"),
    "fsesim": _fsesim_mapper,
    "lsesim": _needs_a_run("lsesim"),
}


def build_mappers(names: list[str], context: dict[str, Any]) -> list[LossMapper]:
    unknown = [n for n in names if n not in MAPPERS]
    if unknown:
        raise ConfigError(f"--losses: unknown {', '.join(unknown)}; choose from {', '.join(MAPPERS)}")
    return [_run_map(context, n) or MAPPERS[n](context) for n in names]


def misaligned_target(y: np.ndarray, other: np.ndarray | None = None) -> np.ndarray:
    """Left half y; right half y's right half shifted right by a quarter width (or `other`'s right half)."""
    h, w = y.shape[:2]
    half = w // 2
    target = y.copy()
    if other is not None:
        target[:, half:] = other[:, half:w]
    else:
        shifted = np.roll(y, w // 4, axis=1)
        target[:, half:] = shifted[:, half:]
    return target


def _tensor(array: np.ndarray) -> torch.Tensor:
    return to_tensor(array)[None]


def _resize_to(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    if array.shape[:2] == (size[1], size[0]):
        return array
    return np.asarray(Image.fromarray(array).resize(size, Image.BICUBIC))


def refuse_other_sizes(x: np.ndarray, compared: dict[str, np.ndarray | None], x_name: str) -> None:
    """Error maps compare pixel to pixel: a compared image of another size than x is refused (it was silently
    resized, and the figure showed it squashed), naming both sizes and the fix."""
    from i2i_cli.errors import BadImageError

    for name, image in compared.items():
        if image is not None and image.shape[:2] != x.shape[:2]:
            raise BadImageError(name, f"{image.shape[1]}x{image.shape[0]}, but {x_name} is {x.shape[1]}x{x.shape[0]}: "
                                      "error maps compare pixel to pixel; resize one to the other's size first")


def analyse_pair(x: np.ndarray, y: np.ndarray, mappers: list[LossMapper], *, misalign: str = "half",
                 other: np.ndarray | None = None, names: tuple[str, str] = ("x", "y"),
                 device: torch.device | str = "cpu", aligned: np.ndarray | None = None) -> PairResult:
    """Error maps of every loss between x and y (or the half-misaligned y), with the separation."""
    if min(x.shape[:2]) < MIN_FEATURE_SIDE and any(m.name != "l1" for m in mappers):
        from i2i_cli.errors import BadImageError

        raise BadImageError(names[0], f"{x.shape[1]}x{x.shape[0]} is smaller than the {MIN_FEATURE_SIDE} px the "
                                      "feature losses need (VGG16 relu4_3 is 1/8 of the size); use a larger image "
                                      "or --losses l1")
    refuse_other_sizes(x, {names[1]: y, "--aligned": aligned}, names[0])
    if other is not None:  # another pair's target, only its halves are borrowed: brought to x's size
        other = _resize_to(other, (x.shape[1], x.shape[0]))
    if misalign not in PAIR_MODES:
        raise ConfigError(f"--misalign {misalign}: choose {', '.join(MISALIGN_MODES)}")
    if misalign == "given-whole" and aligned is None:
        raise ConfigError("--misalign given-whole: pass --aligned IMAGE, the target aligned with x (Y is the "
                          "misaligned one)")
    target = misaligned_target(y, other) if misalign == "half" else y
    tx, ty = _tensor(x).to(device), _tensor(target).to(device)
    h, w = x.shape[:2]
    result = PairResult(names[0], names[1], target, x)
    for mapper in mappers:
        full = _full_map(mapper, tx, ty, (h, w))
        loss = LossResult(mapper.name, full, float(full.mean()), note=mapper.note)
        loss.aligned, loss.misaligned = _columns(full, misalign)
        if misalign == "given-whole":
            loss.aligned = float(_full_map(mapper, tx, _tensor(aligned).to(device), (h, w)).mean())  # type: ignore[arg-type]
        result.losses.append(loss)
    return result


def _full_map(mapper: LossMapper, x: torch.Tensor, y: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    with torch.no_grad():
        raw = mapper.fn(x, y).float()
    return F.interpolate(raw[None, None], size=size, mode="bilinear", align_corners=False)[0, 0].cpu().numpy()


def _columns(full: np.ndarray, misalign: str) -> tuple[float | None, float | None]:
    """(aligned, misaligned) mean error of a map for the mode: which part of the target is misaligned."""
    half = full.shape[1] // 2
    left, right = float(full[:, :half].mean()), float(full[:, half:].mean())
    if misalign in ("half", "given-right"):
        return left, right
    if misalign == "given-left":
        return right, left
    if misalign == "given-whole":
        return None, float(full.mean())  # the aligned mean comes from the --aligned target
    return None, None


# What each --misalign mode means. half/other build the misaligned target; the given-* modes say what is
# already misaligned in the target as given (so it is not shifted a second time).
MISALIGN_MODES = {
    "half": "the target's right half shifted by a quarter width (or --other's right half)",
    "other": "with --pairs: the next pair's right half; with one pair: --other's right half",
    "none": "the target as it is, no aligned/misaligned columns",
    "given-right": "the target's right half is already misaligned (left aligned): nothing is shifted",
    "given-left": "the target's left half is already misaligned (right aligned): nothing is shifted",
    "given-whole": "the whole target is the misaligned case; --aligned IMAGE is the aligned one",
}
PAIR_MODES = ("half", "none", "given-right", "given-left", "given-whole")


def target_caption(misalign: str, other: bool, y_name: str) -> tuple[str, str]:
    """The target panel's title and subtitle: what its halves are under `misalign` (`other`: the misaligned half
    is another image's, not a shifted copy)."""
    if misalign in ("half", "other"):  # the target is y | a misaligned right half made here
        what = "another image's half" if other or misalign == "other" else "shifted"
        return "target: y | misaligned", f"left: aligned, right: {what}"
    subtitles = {"given-right": "left: aligned, right: misaligned (given)",
                 "given-left": "left: misaligned (given), right: aligned", "given-whole": "misaligned (given)"}
    return f"y: {y_name}", subtitles.get(misalign, "")


def figure(result: PairResult, misalign: str, other: bool = False) -> np.ndarray:
    """One PNG: x, y (or the misaligned target), then a heat map per loss with its colour bar and mean.
    `other`: the misaligned half is another image's (--other, or --misalign other), not a shifted copy."""
    from i2i_cli.figure import grid, heatmap_panel, panel

    title, subtitle = target_caption(misalign, other, Path(result.y).name)
    panels = [panel(result.source, f"x: {Path(result.x).name}"), panel(result.target, title, subtitle)]
    for loss in result.losses:
        subtitle = f"mean {loss.mean:.4g}"
        if loss.ratio is not None:
            subtitle += f"  separation {loss.ratio:.2f}"
        panels.append(heatmap_panel(loss.map, f"{loss.name} ({loss.note})" if loss.note else loss.name, subtitle))
    columns = min(len(panels), 4)
    image = grid(panels, columns, "error maps: low = similar structure, high = different")
    return np.asarray(image)


def pairs_in(folder: Path) -> list[tuple[Path, Path]]:
    """x/y pairs: sub-folders x/ and y/ (or A/ and B/) with the same file names, or A|B side-by-side images."""
    for a, b in (("x", "y"), ("A", "B")):
        if (folder / a).is_dir() and (folder / b).is_dir():
            ys = {p.relative_to(folder / b).with_suffix(""): p for p in list_images(folder / b)}
            pairs = [(p, ys[p.relative_to(folder / a).with_suffix("")]) for p in list_images(folder / a)
                     if p.relative_to(folder / a).with_suffix("") in ys]
            if not pairs:
                raise I2IError(f"{folder}: no file in {a}/ has a namesake in {b}/")
            return pairs
    images = list_images(folder)
    if not images:
        raise I2IError(f"{folder}: no pairs; expected x/ and y/ sub-folders with the same names, or A|B images")
    refuse_single_images(folder, images)
    return [(p, p) for p in images]


def refuse_single_images(folder: Path, images: list[Path]) -> None:
    """Without x/ and y/, every image must be an A|B pair: twice as wide as tall (one pixel of slack for odd
    widths). Ordinary images would be cut into two unrelated halves and read as pairs."""
    from i2i_cli.data.images import image_size
    from i2i_cli.errors import BadImageError

    single = []
    for path in images:
        try:
            width, height = image_size(path)
        except BadImageError:
            continue  # listed as unreadable when the pair is loaded
        if width not in (2 * height, 2 * height + 1):
            single.append((path, width, height))
    if single:
        path, width, height = single[0]
        raise I2IError(f"--pairs {folder}: {path} is {width}x{height}, not an A|B pair (twice as wide as tall), "
                       f"and {len(single)} of {len(images)} images are not; put the sources in {folder}/x/ and the "
                       f"targets in {folder}/y/ (same names), or pass two images: i2i errormap X Y")


def load_pair(x_path: Path, y_path: Path) -> tuple[np.ndarray, np.ndarray]:
    if x_path == y_path:  # an A | B side-by-side image
        source, target = split_halves(load_image(x_path))
        return np.ascontiguousarray(source), np.ascontiguousarray(target)
    return load_image(x_path), load_image(y_path)


@dataclass
class BatchResult:
    pairs: list[PairResult]
    bad: list[tuple[str, str]]

    def average(self) -> dict[str, dict[str, float | None]]:
        out: dict[str, dict[str, float | None]] = {}
        names = [loss.name for loss in self.pairs[0].losses] if self.pairs else []
        for i, name in enumerate(names):
            rows = [p.losses[i] for p in self.pairs]
            ratios = [r.ratio for r in rows if r.ratio is not None]
            out[name] = {"mean": float(np.mean([r.mean for r in rows])),
                         "ratio": float(np.mean(ratios)) if ratios else None}
        return out


def figure_path(folder: Path, x_path: Path, root: Path) -> Path:
    """Where a pair's figure goes: the x file's path inside the pairs folder, flattened, as PNG."""
    relative = x_path.relative_to(root).with_suffix("")
    parts = relative.parts[1:] if len(relative.parts) > 1 and relative.parts[0] in ("x", "A") else relative.parts
    return folder / ("__".join(parts) + ".png")


def analyse_folder(folder: str | os.PathLike[str], mappers: list[LossMapper], *, misalign: str = "half",
                   device: torch.device | str = "cpu", figures: str | os.PathLike[str] | None = None,
                   overwrite: bool = False, progress: Callable[[int, int], None] | None = None) -> BatchResult:
    """Every pair of `folder`; misalign "other" takes each target's right half from the next pair's y.
    With `figures`, one figure per pair is written there (existing ones refused before any work unless
    `overwrite`)."""
    from i2i_cli.data.images import save_image
    from i2i_cli.errors import BadImageError

    root = Path(folder)
    pairs = pairs_in(root)
    targets = [figure_path(Path(figures), x_path, root) for x_path, _ in pairs] if figures is not None else []
    existing = [t for t in targets if t.exists()]
    if existing and not overwrite:
        raise I2IError(f"{existing[0]} exists ({len(existing)} figure(s) in {figures} would be replaced); "
                       "pass --overwrite or choose another --out folder")
    if misalign == "given-whole":
        raise ConfigError("--misalign given-whole takes one pair (i2i errormap X Y --aligned Y0); with --pairs use "
                          "given-right or given-left")
    if misalign not in MISALIGN_MODES:
        raise ConfigError(f"--misalign {misalign}: choose {', '.join(MISALIGN_MODES)}")
    if misalign == "other" and len(pairs) < 2:
        raise ConfigError(f"--misalign other: {root} has one pair; it needs two or more (or use --misalign half)")
    results, bad = [], []
    for i, (x_path, y_path) in enumerate(pairs, start=1):
        try:
            x, y = load_pair(x_path, y_path)
            other = load_pair(*pairs[i % len(pairs)])[1] if misalign == "other" else None
            mode = "half" if misalign == "other" else misalign
            result = analyse_pair(x, y, mappers, misalign=mode, other=other, names=(str(x_path), str(y_path)),
                                  device=device)
            results.append(result)
            if targets:
                save_image(figure(result, misalign), targets[i - 1], overwrite=overwrite)
        except BadImageError as exc:
            bad.append((exc.path, exc.reason))
        if progress:
            progress(i, len(pairs))
    return BatchResult(results, bad)
