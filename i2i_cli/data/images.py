"""Image I/O: the one place where i2i decodes and encodes image files.

Every decoded image is an RGB uint8 array (H, W, 3). Conversions are explicit and documented:
EXIF orientation is applied; grey, 16-bit, palette, CMYK and alpha images become RGB (alpha is composited onto
white); images past the pixel limit are refused (raise it with --max-pixels or I2I_MAX_PIXELS).
"""

from __future__ import annotations

import io
import os
import struct
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from i2i_cli.errors import BadImageError, ConfigError
from i2i_cli.fsutil import TEMP_MARKER, atomic_path

if TYPE_CHECKING:  # torch is imported where tensors are made: reading images must not load it
    import torch

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".gif")
DEFAULT_MAX_PIXELS = 178_956_970  # Pillow's own bomb error threshold (2x its warning limit)

# i2i enforces its own limit (with a message naming the option) and leaves Pillow's global one
# (Image.MAX_IMAGE_PIXELS) as the process has it: other code in the process keeps Pillow's guard. Only an image
# past Pillow's limit that i2i's limit allows is opened without Pillow's check (`_open_past_pillow_limit`).

# Pillow warns about recoverable oddities of single files (corrupt EXIF, palette transparency, truncated
# metadata); i2i decodes each file or reports it as bad itself. One filter, installed once: a
# warnings.catch_warnings() per decode is not thread-safe (decoding runs in thread pools), and two threads
# interleaving it leave a global "ignore" installed that hides every later warning of the process.
warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL(\.|$)")


def max_pixels_default() -> int:
    value = os.environ.get("I2I_MAX_PIXELS")
    if value and not value.isdigit():
        raise ConfigError(f"I2I_MAX_PIXELS={value}: takes a whole number of pixels (0: no limit); set it so or unset it")
    return int(value) if value else DEFAULT_MAX_PIXELS


def set_max_pixels(limit: int | None) -> None:
    """Make `limit` the default of every later decode in this process and in the processes it starts (data
    loader workers): what a command's --max-pixels does. None leaves the default as it is."""
    if limit is not None:
        if limit < 0:
            raise ConfigError(f"--max-pixels {limit}: pass 0 (no limit) or a positive number of pixels")
        os.environ["I2I_MAX_PIXELS"] = str(limit)


def _open_past_pillow_limit(data: bytes) -> Image.Image:
    """Open `data` the way Image.open does, minus Pillow's process-wide size check: each registered format's
    factory in turn. Called only for an image i2i's own limit has already allowed."""
    Image.init()
    prefix = data[:16]
    for name in Image.ID:
        factory, accept = Image.OPEN[name]
        accepted = accept(prefix) if accept else True
        if not accepted or isinstance(accepted, str):  # a string is Pillow's "looks like it, but" message
            continue
        try:
            return factory(io.BytesIO(data), "")
        except (SyntaxError, IndexError, TypeError, struct.error):
            continue
    raise UnidentifiedImageError("cannot identify image file")


def _open(data: bytes) -> Image.Image:
    """Image.open; an image past Pillow's own bomb limit is opened without it, so that i2i's limit (checked by
    the caller on the header size, with a message naming --max-pixels) decides."""
    try:
        return Image.open(io.BytesIO(data))
    except Image.DecompressionBombError:
        return _open_past_pillow_limit(data)


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(TEMP_MARKER)


def list_images(root: str | os.PathLike[str], recursive: bool = True) -> list[Path]:
    """Image files under `root` by extension, sorted, hidden files and i2i temporaries skipped."""
    folder = Path(root)
    candidates: Iterable[Path] = folder.rglob("*") if recursive else folder.iterdir()
    found = [
        p
        for p in candidates
        if p.is_file() and is_image_file(p) and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    ]
    return sorted(found)


def skipped_links(root: str | os.PathLike[str]) -> list[tuple[str, str]]:
    """(path, why) of what list_images passes over without a word otherwise: broken symbolic links with an image
    name, and symlinked folders (not followed, so a link cannot loop or leave the folder). Listed with the bad files."""
    folder = Path(root)
    if not folder.is_dir():
        return []
    found = []
    for path in sorted(folder.rglob("*")):
        if not path.is_symlink() or any(part.startswith(".") for part in path.relative_to(folder).parts):
            continue
        if not path.exists() and is_image_file(path):
            found.append((str(path), f"a broken symbolic link (to {os.readlink(path)}); fix or remove it"))
        elif path.is_dir():
            found.append((str(path), "a symbolic link to a folder, not followed; pass that folder itself"))
    return found


def _to_rgb_array(img: Image.Image) -> np.ndarray:
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(img, dtype=np.float64)
        # 16-bit data spans 0..65535; a mode-I image holding 8-bit values is left as it is.
        scale = 257.0 if mode.startswith("I;16") or arr.max(initial=0) > 255 else 1.0
        grey = np.clip(np.round(arr / scale), 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    if mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        if arr.max(initial=0) <= 1.0:
            arr = arr * 255.0
        grey = np.clip(np.round(arr), 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    if mode == "P":
        img = img.convert("RGBA") if "transparency" in img.info else img.convert("RGB")
        mode = img.mode
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    return np.asarray(img.convert("RGB"), dtype=np.uint8).copy()


def _open_file(path: Path) -> Image.Image:
    """Image.open of a file (header only), without Pillow's process-wide bomb check (see `_open`)."""
    try:
        return Image.open(path)
    except Image.DecompressionBombError:
        return _open_past_pillow_limit(path.read_bytes())


def load_image(path: str | os.PathLike[str], *, max_pixels: int | None = None) -> np.ndarray:
    """Decode `path` into an RGB uint8 array (H, W, 3). Raises BadImageError naming the file and the reason."""
    file = Path(path)
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise BadImageError(file, f"cannot read ({exc.strerror or exc})") from exc
    return decode_image(data, file, max_pixels=max_pixels)


def decode_image(data: bytes, name: str | os.PathLike[str], *, max_pixels: int | None = None) -> np.ndarray:
    """Decode the bytes of an image file (read from a disk, an object store or an upload; `name` says which in
    errors) into an RGB uint8 array (H, W, 3), as load_image does. Raises BadImageError naming the file and the
    reason; the pixel limit is checked on the header, before the pixels are decoded."""
    limit = max_pixels_default() if max_pixels is None else max_pixels
    file = str(name)  # a path or a URL (s3://...): Path() would fold a URL's '//'
    if not data:
        raise BadImageError(file, "empty file (0 bytes); delete or replace it")
    try:
        img = _open(data)
        width, height = img.size
        if limit and width * height > limit:
            raise BadImageError(
                file,
                f"{width}x{height} = {width * height:,} pixels is past the limit of {limit:,} "
                "(possible decompression bomb); raise it with --max-pixels or I2I_MAX_PIXELS if you trust the file",
            )
        img.load()
        img = ImageOps.exif_transpose(img) or img
        return _to_rgb_array(img)
    except BadImageError:
        raise
    except UnidentifiedImageError as exc:
        raise BadImageError(file, "not a readable image (unknown format or not an image); delete or replace it") from exc
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise BadImageError(file, f"corrupt or truncated image ({exc}); re-export or remove it") from exc


def load_label_image(path: str | os.PathLike[str]) -> tuple[np.ndarray, str]:
    """Decode a segmentation label map: ((H, W) int64 class indices, "index") for single-channel and
    palette ("P") files, whose raw indices are the classes; ((H, W, 3) uint8, "color") for colour maps."""
    file = Path(path)
    try:
        img = _open_file(file)
        img.load()
    except FileNotFoundError as exc:
        raise BadImageError(file, "no such file") from exc
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise BadImageError(file, f"not a readable label map ({exc})") from exc
    if img.mode in ("L", "P", "I", "I;16", "I;16B", "I;16L", "I;16N"):
        return np.asarray(img, dtype=np.int64).copy(), "index"
    return _to_rgb_array(img), "color"


def image_size(path: str | os.PathLike[str]) -> tuple[int, int]:
    """(width, height) after EXIF orientation, read from the header only."""
    try:
        with _open_file(Path(path)) as img:
            width, height = img.size
            orientation = img.getexif().get(0x0112, 1)
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise BadImageError(path, f"not a readable image ({exc})") from exc
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def image_format(path: Path) -> str:
    """The format a file's name says (Pillow's table: .gif -> GIF, .jpg -> JPEG...): what save_image writes.
    A name no writer knows is refused rather than filled with PNG bytes."""
    Image.init()
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None or fmt not in Image.SAVE:
        raise ConfigError(f"{path}: i2i cannot write '{path.suffix or 'no extension'}' images; name it .png "
                          "(or .jpg, .webp, .tif, .bmp, .gif)")
    return fmt


def save_image(array: np.ndarray, path: str | os.PathLike[str], *, overwrite: bool = False, quality: int = 95) -> None:
    """Encode an RGB (or grey) uint8 array to `path` through a temporary name (never half-written)."""
    target = Path(path)
    img, fmt, params = _encoder(array, target, quality)
    with atomic_path(target, overwrite=overwrite) as tmp:
        img.save(tmp, format=fmt, **params)


MIME_SUFFIXES = {"image/png": ".png", "image/jpeg": ".jpg", "image/webp": ".webp"}  # what encode_image serves


def encode_image(array: np.ndarray, suffix: str = ".png", quality: int = 95) -> bytes:
    """The bytes save_image writes for `array` under a name ending in `suffix` (object stores), or of a MIME type
    of MIME_SUFFIXES (an HTTP answer)."""
    img, fmt, params = _encoder(array, Path("image" + MIME_SUFFIXES.get(suffix, suffix)), quality)
    buffer = io.BytesIO()
    img.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def _encoder(array: np.ndarray, name: Path, quality: int) -> tuple[Image.Image, str, dict[str, int]]:
    if array.dtype != np.uint8:
        raise TypeError(f"save_image wants uint8, got {array.dtype}")
    fmt = image_format(name)
    return Image.fromarray(array), fmt, ({"quality": quality} if fmt in ("JPEG", "WEBP") else {})


def split_halves(array: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """An A | B image (H, W, 3) -> its (left, right) halves, each W // 2 wide (an odd last column is dropped).

    Views, not copies: wrap them in np.ascontiguousarray where a contiguous array is needed."""
    half = array.shape[1] // 2
    return array[:, :half], array[:, half : 2 * half]


def to_tensor(array: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, 3) -> float32 (3, H, W) in [-1, 1]."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1).float().div(127.5).sub(1.0)


def to_tensor_batch(arrays: Sequence[np.ndarray]) -> torch.Tensor:
    """Same-size uint8 (H, W, 3) arrays -> float32 (N, 3, H, W) in [-1, 1]."""
    import torch

    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)


def uint8_tensor_to_signed(tensor: torch.Tensor) -> torch.Tensor:
    """A uint8 image tensor (any shape, e.g. a collated (N, 3, H, W) batch on its device) -> float32 in [-1, 1]."""
    return tensor.float().div_(127.5).sub_(1.0)


def to_uint8(tensor: torch.Tensor) -> np.ndarray:
    """float (3, H, W) in [-1, 1] -> uint8 (H, W, 3), rounded."""
    arr = tensor.detach().float().clamp(-1, 1).add(1).mul(127.5).round().byte().permute(1, 2, 0).cpu().numpy()
    return np.ascontiguousarray(arr)


def to_uint8_batch(tensor: torch.Tensor) -> list[np.ndarray]:
    """float (N, 3, H, W) in [-1, 1] -> N contiguous uint8 (H, W, 3) arrays, rounded."""
    out = tensor.detach().float().clamp(-1, 1).add(1).mul(127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()
    return [np.ascontiguousarray(o) for o in out]
