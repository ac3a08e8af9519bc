"""`i2i data align-faces`: face photos aligned the way StarGAN v2's CelebA-HQ images are (its align mode).

Written from the facts of clovaai/stargan-v2's core/wing.py (`align_faces`, `FaceAligner`, `pad_mirror` and the
matrix helpers), without its code and without OpenCV or scikit-image:

1. the image is resized to SIZE x SIZE (Pillow bilinear, as torchvision's Resize on a PIL image) and mapped to
   [-1, 1] and back to uint8 by truncation, in float32, as the reference does;
2. FAN finds 98 landmarks (models/networks/fan.py `FAN.landmarks`);
3. `pad_mirror`: the image is reflect-padded by half its size on every side and blended, towards the border, with
   a blurred copy (2x2 mean down, Gaussian blur of sigma SIZE // 100, bilinear up), weight min(d / (2H/4), 1)^4;
4. `landmarks_to_matrix`: translate the landmarks' mean to the origin, rotate their x axis (eyes and mouth
   corners) onto the reference's, scale by the mean distance ratio of eyes' centres and mouth corners, translate
   to the mean of CelebA-HQ's mean landmarks (celeba_lm_mean.npz times SIZE / 256);
5. `warp_lanczos4`: the padded image through that matrix (Lanczos, 8x8 taps, zeros outside), the top-left
   SIZE x SIZE kept, mapped to [-1, 1] in float32 and saved as the reference's save_image rounds.

What differs from the reference (tests/golden/test_golden_align_faces.py measures it):
- OpenCV's warp quantises source coordinates to 1/32 pixel and its Lanczos weights to a 32-entry float table;
  both are reproduced, but its float sum order is not: results differ by float round-off only;
- the reference scales the mean landmarks by SIZE // 256 and the landmarks by SIZE // 64 (integer division):
  sizes that are not multiples of 256 break it (below 256 the target collapses to a point); here the factors are
  SIZE / 256 and SIZE / 64, identical for multiples of 256;
- a rotation of exactly 0 can give sqrt of a tiny negative number (NaN) in the reference; it is clipped to 0 here.
Images that are not faces are aligned anyway: the FAN always finds 98 maxima, and the matrix follows them.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from i2i_cli.errors import BadImageError, ConfigError, DataError, WeightsError

EYE_LEFT = list(range(60, 68)) + [96]
EYE_RIGHT = list(range(68, 76)) + [97]
MOUTH_LEFT, MOUTH_RIGHT = 76, 82
SCALE_POINTS = [96, 97, 76, 82]  # eye centres and mouth corners: the points the scale is measured on
MEAN_SIZE = 256  # celeba_lm_mean.npz is in 256 px coordinates
TAB = 32  # OpenCV's INTER_TAB_SIZE: sub-pixel positions of the warp
ProgressFn = Callable[[int, int], None]


# --- the matrix: pure functions of (98, 2) float32 landmark arrays --------------------------------------------

def _translation(offset: np.ndarray) -> np.ndarray:
    matrix = np.eye(3)
    matrix[:2, 2] = offset
    return matrix


def landmarks_x_axis(points: np.ndarray) -> np.ndarray:
    """Unit x axis of a face: eye-to-eye vector minus the eyes-to-mouth vector turned by 90 degrees."""
    eye_left, eye_right = points[EYE_LEFT].mean(axis=0), points[EYE_RIGHT].mean(axis=0)
    mouth_centre = (points[MOUTH_LEFT] + points[MOUTH_RIGHT]) * 0.5
    across = eye_right - eye_left
    up = (eye_left + eye_right) * 0.5 - mouth_centre
    axis = across - np.array([up[1], -up[0]])
    return axis / np.linalg.norm(axis)


def rotation_between(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """3x3 rotation turning direction `source` onto `target`."""
    source = source / np.linalg.norm(source)
    target = target / np.linalg.norm(target)
    cos = np.dot(source, target)
    # the reference's sqrt(1 - c^2) is NaN when round-off puts |c| past 1; clipped here
    sin = np.sqrt(np.maximum(1 - cos * cos, 0)) * np.sign(source[0] * target[1] - source[1] * target[0])
    return np.array(((cos, -sin, 0), (sin, cos, 0), (0, 0, 1)))


def scale_between(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """3x3 isotropic scale: mean over eyes' centres and mouth corners of their distance ratio to the mean point."""
    source_norms = np.linalg.norm(source - source.mean(axis=0), axis=1)
    target_norms = np.linalg.norm(target - target.mean(axis=0), axis=1)
    matrix = np.eye(3)
    matrix[0, 0] = matrix[1, 1] = (target_norms / source_norms)[SCALE_POINTS].mean()
    return matrix


def landmarks_to_matrix(points: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """3x3 matrix taking image coordinates with landmarks `points` to the frame of `reference` landmarks."""
    rotation = rotation_between(landmarks_x_axis(points), landmarks_x_axis(reference))
    to_origin, to_reference = _translation(-points.mean(axis=0)), _translation(reference.mean(axis=0))
    return to_reference @ (scale_between(points, reference) @ (rotation @ to_origin))


# --- pad_mirror: reflect padding blended with a blurred copy ---------------------------------------------------

def gaussian_blur(image: np.ndarray, sigma: float, truncate: float = 4.0) -> np.ndarray:
    """scipy.ndimage / skimage Gaussian of an (H, W, C) float image over H and W: kernel radius
    int(truncate * sigma + 0.5), edges repeated ('nearest'); sigma 0 returns the image."""
    if sigma <= 0:
        return image.astype(np.float64)
    radius = int(truncate * sigma + 0.5)
    taps = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 / sigma**2 * taps.astype(np.float64) ** 2)
    kernel /= kernel.sum()
    out = image.astype(np.float64)
    for axis in (0, 1):
        padding = [(0, 0)] * out.ndim
        padding[axis] = (radius, radius)
        padded = np.pad(out, padding, mode="edge")
        length = out.shape[axis]
        out = sum(w * np.take(padded, np.arange(k, k + length), axis=axis) for k, w in enumerate(kernel))
    return out


def halve_mean(image: np.ndarray) -> np.ndarray:
    """uint8 (2H, 2W, C) -> (H, W, C): the mean of each 2x2 block rounded half up (OpenCV's linear resize at
    exactly half size, which it runs as its fast area resize)."""
    blocks = image.astype(np.int32)
    total = blocks[0::2, 0::2] + blocks[0::2, 1::2] + blocks[1::2, 0::2] + blocks[1::2, 1::2]
    return ((total + 2) >> 2).astype(np.uint8)


def _double_axis(image: np.ndarray, axis: int) -> np.ndarray:
    """Bilinear x2 along one axis with pixel centres aligned (weights 3/4, 1/4) and the edge pixel repeated."""
    previous = np.concatenate([np.take(image, [0], axis=axis), image], axis=axis)
    following = np.concatenate([image, np.take(image, [-1], axis=axis)], axis=axis)
    first = 0.75 * np.take(image, np.arange(image.shape[axis]), axis=axis)
    even = first + 0.25 * np.take(previous, np.arange(image.shape[axis]), axis=axis)
    odd = first + 0.25 * np.take(following, np.arange(1, image.shape[axis] + 1), axis=axis)
    shape = list(image.shape)
    shape[axis] *= 2
    out = np.empty(shape)
    index = [slice(None)] * image.ndim
    index[axis] = slice(0, None, 2)
    out[tuple(index)] = even
    index[axis] = slice(1, None, 2)
    out[tuple(index)] = odd
    return out


def double_size(image: np.ndarray) -> np.ndarray:
    """Bilinear x2 of an (H, W, C) float image, OpenCV's resize convention (centres aligned, edges clamped)."""
    return _double_axis(_double_axis(image, 1), 0)


def pad_mirror(image: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (H, W, 3) -> float64 (2H', 2W', 3) with H' = 2 (H // 2), and the landmarks moved with it: reflect
    padding of H // 2 (W // 2) a side, fading into a blurred copy over a quarter of the padded size."""
    height, width = image.shape[:2]
    padded = np.pad(image, ((height // 2, height // 2), (width // 2, width // 2), (0, 0)), mode="reflect")
    blurred = double_size(gaussian_blur(halve_mean(padded) / 255.0, height // 100)) * 255
    rows, cols = padded.shape[:2]
    ramp = rows // 4  # the reference measures both directions in rows
    weight_y = np.clip(np.arange(rows) / ramp, 0, 1)
    weight_x = np.clip(np.arange(cols) / ramp, 0, 1)
    weight_y = np.minimum(weight_y, weight_y[::-1])[:, None]
    weight_x = np.minimum(weight_x, weight_x[::-1])[None, :]
    weight = (np.minimum(weight_y, weight_x) ** 4)[..., None]
    moved = points + np.array([cols // 4, rows // 4])
    return padded * weight + blurred * (1 - weight), moved.astype(points.dtype)


# --- the warp: OpenCV's warpPerspective with INTER_LANCZOS4 and a zero border ----------------------------------

def lanczos4_table() -> np.ndarray:
    """(32, 8) float32 weights of taps -3..4 for each 1/32 sub-pixel position t, OpenCV's way: sinc(u) sinc(u / 4)
    at u = t + 3 - tap written through sin and cos of one angle, rounded to float32, normalised in float32."""
    s45 = np.sqrt(0.5)
    phases = ((1, 0), (-s45, -s45), (0, 1), (s45, -s45), (-1, 0), (s45, s45), (0, -1), (-s45, s45))
    table = np.zeros((TAB, 8), dtype=np.float32)
    table[0, 3] = 1
    for k in range(1, TAB):
        start = -(k / TAB + 3) * np.pi / 4
        sin0, cos0 = np.sin(start), np.cos(start)
        total = np.float32(0)
        for tap, (a, b) in enumerate(phases):
            angle = -(k / TAB + 3 - tap) * np.pi / 4
            table[k, tap] = np.float32((a * sin0 + b * cos0) / (angle * angle))
            total = np.float32(total + table[k, tap])
        table[k] *= np.float32(1) / total
    return table


def warp_lanczos4(image: np.ndarray, matrix: np.ndarray, size: int, rows_per_block: int = 64) -> np.ndarray:
    """The top-left (size, size) of `image` (H, W, C float64) warped by the forward 3x3 `matrix`: each output
    pixel reads the source at inverse(matrix) @ (x, y, 1), rounded to 1/32 pixel, through 8x8 Lanczos taps,
    zeros outside the image."""
    inverse = np.linalg.inv(matrix)
    table = lanczos4_table()
    height, width, channels = image.shape
    margin = 8  # a zero frame as wide as the taps: windows partly outside read zeros, as OpenCV's constant border
    framed = np.zeros((height + 2 * margin, width + 2 * margin, channels))
    framed[margin:-margin, margin:-margin] = image
    out = np.empty((size, size, channels))
    limit = 2.0**31 - 1
    for top in range(0, size, rows_per_block):
        ys, xs = np.meshgrid(np.arange(top, min(top + rows_per_block, size), dtype=np.float64),
                             np.arange(size, dtype=np.float64), indexing="ij")
        w = inverse[2, 0] * xs + inverse[2, 1] * ys + inverse[2, 2]
        w = np.where(w != 0, TAB / np.where(w != 0, w, 1), 0)
        sx = np.rint(np.clip((inverse[0, 0] * xs + inverse[0, 1] * ys + inverse[0, 2]) * w, -limit, limit))
        sy = np.rint(np.clip((inverse[1, 0] * xs + inverse[1, 1] * ys + inverse[1, 2]) * w, -limit, limit))
        sx, sy = sx.astype(np.int64), sy.astype(np.int64)
        # a window wholly outside reads only zeros wherever it is: clamp it into the frame
        x0 = np.clip((sx >> 5) - 3, -margin, width) + margin
        y0 = np.clip((sy >> 5) - 3, -margin, height) + margin
        wx, wy = table[sx & (TAB - 1)], table[sy & (TAB - 1)]
        block = np.zeros(xs.shape + (channels,))
        for i in range(8):
            for j in range(8):
                block += framed[y0 + i, x0 + j] * (wy[..., i] * wx[..., j]).astype(np.float64)[..., None]
        out[top:top + xs.shape[0]] = block
    return out


# --- one image -----------------------------------------------------------------------------------------------

def _to_unit_tensor(image: np.ndarray) -> Any:
    """uint8 (H, W, 3) -> float32 (1, 3, H, W) in [-1, 1], as ToTensor then Normalize(0.5, 0.5) compute it."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div(255)
    return x.sub(0.5).div(0.5)[None]


def _saved_pixels(aligned: np.ndarray) -> np.ndarray:
    """The reference's last steps in float32: [0, 255] -> [-1, 1] -> (x + 1) / 2 clamped -> x 255 + 0.5, truncated."""
    import torch

    x = torch.from_numpy(aligned).float() / 255 * 2 - 1
    x = ((x + 1) / 2).clamp(0, 1)
    return x.mul(255).add(0.5).clamp(0, 255).to(torch.uint8).numpy()


def resize_like_reference(image: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    return np.array(Image.fromarray(image).resize((size, size), Image.BILINEAR))


def align_image(image: np.ndarray, fan: Any, mean_landmarks: np.ndarray, size: int) -> np.ndarray:
    """uint8 (H, W, 3) photo -> uint8 (size, size, 3) aligned face; `mean_landmarks` (98, 2) float32 in 256 px
    coordinates (celeba_lm_mean.npz's 'mean'); `fan` a models.networks.fan.FAN with its weights loaded."""
    x = _to_unit_tensor(resize_like_reference(image, size))
    device = next(fan.parameters()).device
    points = fan.landmarks(x.to(device))[0].cpu().numpy().astype(np.float32)
    # the reference turns the tensor back into uint8 by truncation before padding
    pixels = ((x[0].permute(1, 2, 0).numpy() * np.float32(0.5) + np.float32(0.5)) * np.float32(255)).astype(np.uint8)
    padded, points = pad_mirror(pixels, points)
    reference = (mean_landmarks * np.float32(size / MEAN_SIZE)).astype(np.float32)
    return _saved_pixels(warp_lanczos4(padded, landmarks_to_matrix(points, reference), size))


# --- a folder --------------------------------------------------------------------------------------------------

@dataclass
class AlignOptions:
    size: int = 256
    overwrite: bool = False
    device: str = "auto"
    weights_dir: str | os.PathLike[str] | None = None


@dataclass
class AlignReport:
    out_dir: Path
    size: int
    written: list[str] = field(default_factory=list)
    bad: list[tuple[str, str]] = field(default_factory=list)
    weights: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"out_dir": str(self.out_dir), "size": self.size, "written": self.written,
                "bad": [{"file": f, "problem": p} for f, p in self.bad], "weights": self.weights}


def _plan(inputs: Path, out_dir: Path, overwrite: bool) -> list[tuple[Path, Path]]:
    """(input, output) pairs, refused before any work where an output would replace an input or, without
    --overwrite, any existing file."""
    from i2i_cli.data.images import is_image_file, list_images
    from i2i_cli.fsutil import OutputExistsError

    if not inputs.exists():
        raise DataError(f"IN {inputs}: does not exist; pass a folder of face photos or one photo")
    if inputs.is_file():
        if not is_image_file(inputs):
            raise DataError(f"IN {inputs}: not an image file name (.png, .jpg, ...); pass a photo or a folder")
        files, root = [inputs], inputs.parent
    else:
        files, root = list_images(inputs), inputs
    if not files:
        raise DataError(f"IN {inputs}: no image files in it; pass a folder of face photos (.png, .jpg, ...)")
    pairs = [(f, out_dir / f.relative_to(root)) for f in files]
    out_real, in_real = out_dir.resolve(), inputs.resolve()
    if inputs.is_dir() and (out_real == in_real or in_real in out_real.parents):
        raise DataError(f"OUT {out_dir}: is IN or inside it, so outputs would mix with (or replace) the photos; "
                        "choose an OUT outside IN")
    sources = {f.resolve() for f in files}
    for _, target in pairs:
        if target.resolve() in sources:
            raise DataError(f"OUT {out_dir}: {target} is an input photo; choose another OUT")
        if target.exists() and not overwrite:
            raise OutputExistsError(target)
    return pairs


def load_mean_landmarks(path: Path) -> np.ndarray:
    """celeba_lm_mean.npz's 'mean': (98, 2) landmarks of CelebA-HQ's faces in 256 px coordinates."""
    try:
        with np.load(path, allow_pickle=False) as data:
            mean = np.asarray(data["mean"], dtype=np.float32)
    except (OSError, ValueError, KeyError) as exc:
        raise WeightsError(f"{path}: not a mean-landmarks file ({type(exc).__name__}: {exc}); "
                           "download celeba_lm_mean.npz again (`i2i weights`)") from exc
    if mean.shape != (98, 2):
        raise WeightsError(f"{path}: 'mean' has shape {mean.shape}, not (98, 2); download celeba_lm_mean.npz again")
    return mean


def load_fan(path: Path, device: str) -> Any:
    """The FAN of wing.ckpt (its width read from the file, so stand-in checkpoints load too) on `device`."""
    from i2i_cli.models.networks.fan import FAN
    from i2i_cli.weights import load_state_dict

    state = load_state_dict(path)
    inner = state.get("state_dict", state) if isinstance(state, dict) else state
    try:
        width = int(inner["conv1.conv.weight"].shape[0]) * 4
        fan = FAN(width)
        fan.load_pretrained_state_dict(inner)
    except (KeyError, ValueError, TypeError, AttributeError) as exc:
        raise WeightsError(f"{path}: not a FAN checkpoint in wing.ckpt's layout ({exc}); "
                           "download wing.ckpt again (`i2i weights`)") from exc
    return fan.to(device).eval()


def _weights(name: str, weights_dir: str | os.PathLike[str] | None) -> Any:
    """The resolved file; missing with an explicit --weights-dir, the message points there rather than the cache."""
    from i2i_cli import weights

    if weights_dir is not None and weights.status(name, weights_dir)[0] == "missing" and weights.offline():
        e = weights.entry(name)
        raise WeightsError(f"weights '{name}' ({e.filename}) are not in --weights-dir {weights_dir}; download {e.url} "
                           f"and place it at {Path(weights_dir) / e.filename} (or set I2I_WEIGHTS_DIR to the folder holding it)")
    return weights.resolve(name, weights_dir=weights_dir)


def align_faces(inputs: str | os.PathLike[str], out_dir: str | os.PathLike[str], options: AlignOptions | None = None,
                progress: ProgressFn | None = None) -> AlignReport:
    """Align every photo of `inputs` (a folder, searched recursively, or one image) into `out_dir` under the same
    relative names. Weights, the output names and OUT are checked before any image is read; unreadable images
    are listed in the report and the rest go on."""
    from i2i_cli.data.images import load_image, save_image
    from i2i_cli.engine.device import resolve_device
    from i2i_cli.fsutil import check_output_folder

    opts = options or AlignOptions()
    if opts.size < 64:
        raise ConfigError(f"--size {opts.size}: too small for the landmark network; use 64 or more (256: CelebA-HQ)")
    wing = _weights("wing", opts.weights_dir)
    mean_file = _weights("celeba_lm_mean", opts.weights_dir)
    source, target = Path(inputs), Path(out_dir)
    pairs = _plan(source, target, opts.overwrite)
    check_output_folder(target, "OUT")
    fan = load_fan(wing.path, str(resolve_device(opts.device)))
    mean = load_mean_landmarks(mean_file.path)
    report = AlignReport(target, opts.size, weights=[wing.protocol(), mean_file.protocol()])
    for done, (photo, output) in enumerate(pairs, start=1):
        try:
            aligned = align_image(load_image(photo), fan, mean, opts.size)
        except BadImageError as exc:
            report.bad.append((exc.path, exc.reason))
        else:
            output.parent.mkdir(parents=True, exist_ok=True)
            save_image(aligned, output, overwrite=opts.overwrite)
            report.written.append(str(output))
        if progress is not None:
            progress(done, len(pairs))
    return report
