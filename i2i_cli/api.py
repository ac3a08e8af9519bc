"""The Python API: `i2i_cli.load(checkpoint)` -> a Translator for images, arrays, tensors and folders.

It wraps the same translators and folder loop as `i2i translate` (i2i_cli/inference/), so one image through
the API equals that image through the CLI. Imported only by `i2i_cli.load`: `import i2i_cli` stays light.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from i2i_cli.config import check_ranges
from i2i_cli.data.images import is_image_file, list_images, to_tensor
from i2i_cli.errors import ConfigError
from i2i_cli.fsutil import remove_stale_temporaries
from i2i_cli.inference import (
    OnnxStyles,
    OnnxTranslator,
    ProgressFn,
    TorchStyles,
    TorchTranslator,
    TranslateOptions,
    TranslateResult,
    check_input_size,
    check_output_target,
    check_tile_options,
    check_translation,
    domain_index,
    no_styles,
    onnx_session,
    pad_to_multiple,
    resize_shorter_side,
    resolve_checkpoint,
    run_array,
    run_tiled,
    skip_existing_output,
    translate_folder,
    translate_with_styles,
)
from i2i_cli.models.base import StyleSource

Image = TypeVar("Image")  # a PIL image, a uint8 (H, W, 3) array or a float (N, 3, H, W) tensor: what goes in comes out


class Translator:
    """A trained model ready to translate: call it on one image, or `translate_folder` a folder.

    Single-direction models (pix2pix, CycleGAN, CUT, ...) translate with `t(image)`; multi-domain ones
    (StarGAN v2) need `t(image, style_ref=..., domain=...)` or `t(image, domain=..., seed=...)`."""

    def __init__(self, checkpoint: str | os.PathLike[str] | None, device: str = "auto", *, direction: str = "AtoB",
                 precision: str = "auto", caption: str | None = None, runtime: str = "auto") -> None:
        if direction not in ("AtoB", "BtoA"):
            raise ConfigError(f"direction {direction!r}: choose AtoB or BtoA")
        path, self.note = resolve_checkpoint(checkpoint)
        self.path, self.direction, self.precision, self._requested_device = path, direction, precision, device
        self._single: TorchTranslator | OnnxTranslator | None = None
        self._styles: TorchStyles | OnnxStyles | None = None
        if path.suffix == ".onnx":
            if caption is not None:
                raise ConfigError(f"caption: {path} was exported with its caption fixed; translate with the run "
                                  "folder, or export again with `i2i export --caption`")
            session, metadata = onnx_session(path, device, runtime, precision)
            if "companions" in metadata:
                self._styles = OnnxStyles(path, device, runtime, precision, session=session, metadata=metadata)
            else:
                self._single = OnnxTranslator(path, direction, device, session=session, metadata=metadata)
                self.note = "; ".join(n for n in (self.note, self._single.note) if n)
        else:
            if runtime != "auto":
                raise ConfigError(f"--runtime {runtime} runs exported .onnx files; {path} is a run (PyTorch)")
            from i2i_cli.engine.checkpoint import load_for_inference

            loaded = load_for_inference(path, device="cpu")
            if isinstance(loaded.method, StyleSource):
                self._styles = TorchStyles(loaded, device, precision)
            else:
                self._single = TorchTranslator(loaded, direction, device, precision, caption=caption)

    def __repr__(self) -> str:
        """One line: what translates, from where, at which step, on what (not the network's modules)."""
        loaded = self.loaded
        step = f", step={loaded.step}" if loaded is not None else ""
        return (f"Translator(method={self.name!r}, checkpoint='{self.path}'{step}, device={self.device!r}, "
                f"precision={self.precision!r})")

    # --- what the model is -------------------------------------------------------------------------------
    @property
    def loaded(self) -> Any:
        """The run (LoadedModel: method, config, step) behind a PyTorch translator; None for ONNX files."""
        return getattr(self._single if self._single is not None else self._styles, "loaded", None)

    @property
    def name(self) -> str:
        """The method's name (from an ONNX file's metadata for exports)."""
        if self._styles is not None:
            return self._styles.name
        loaded = self.loaded
        return loaded.method.name if loaded is not None else self._single.metadata.get("method", "")  # type: ignore[union-attr]

    @property
    def multi_domain(self) -> bool:
        return self._styles is not None

    @property
    def domains(self) -> list[str]:
        return list(self._styles.domains) if self._styles is not None else []

    @property
    def size_multiple(self) -> int:
        """Images are padded to a multiple of this (the network's stride)."""
        return self._limits()[0]

    @property
    def min_size(self) -> int:
        """The shortest side the network takes, in pixels."""
        return self._limits()[1]

    def _limits(self) -> tuple[int, int]:
        if self._single is not None:
            return int(self._single.size_multiple), int(self._single.min_size)
        if isinstance(self._styles, TorchStyles):
            return int(self._styles.method.size_multiple), int(self._styles.method.min_size)
        metadata = self._styles.metadata  # type: ignore[union-attr]
        return int(metadata.get("size_multiple", 1)), int(metadata.get("min_size", 1))

    @property
    def precision_ran(self) -> str:
        """What runs: fp32, bf16 or fp16 (`auto` resolved; an ONNX file: the precision it was exported in)."""
        chosen = self._torch_precision()
        return chosen.name if chosen is not None else self._onnx_source().precision_ran

    @property
    def precision_note(self) -> str:
        """What runs and why, for the line a command prints: 'bf16 (auto: native bf16 on this CPU)'."""
        chosen = self._torch_precision()
        return chosen.describe() if chosen is not None else self._onnx_source().precision_note

    def _torch_precision(self) -> Any:
        return getattr(self._single if self._single is not None else self._styles, "precision", None)

    def _onnx_source(self) -> Any:
        """The ONNX translator or style source (precision_ran, precision_note)."""
        return self._single if self._single is not None else self._styles

    @property
    def device(self) -> str:
        source = self._single if self._single is not None else self._styles
        return str(source.device)  # type: ignore[union-attr]

    # --- translating ---------------------------------------------------------------------------------------
    def __call__(self, image: Image, *, style_ref: Any = None, domain: str | None = None, seed: int = 0,
                 tile: int = 0, overlap: int = 32, blend: str = "linear", resize: int | None = None,
                 keep_size: bool = False) -> Image:
        """Translate one image (PIL, uint8 HxWx3 array) or a batch (float tensor N,3,H,W in [-1, 1]).

        The result is the same kind, at the input's size (with `resize`: that size, unless `keep_size`)."""
        check_ranges({"tile": tile, "overlap": overlap, "resize": resize})
        translator = self._translator(style_ref, domain, seed)
        if isinstance(image, torch.Tensor):
            if resize:
                raise ConfigError("resize: resize tensors yourself (torch.nn.functional.interpolate); resize is for "
                                  "PIL images and arrays")
            return _run_tensor(translator, image, tile, overlap, blend)  # type: ignore[return-value]
        array, kind = _as_array(image)
        prepared = resize_shorter_side(array, resize)
        check_input_size(prepared, Path("image"), translator, tile)  # the CLI's check and message: an I2IError
        output = run_array(translator, [prepared], tile, overlap, blend)[0]
        if keep_size and resize and output.shape[:2] != array.shape[:2]:
            from PIL import Image as PILImage

            output = np.asarray(PILImage.fromarray(output).resize((array.shape[1], array.shape[0]), PILImage.BICUBIC))
        if kind == "pil":
            from PIL import Image as PILImage

            return PILImage.fromarray(output)  # type: ignore[return-value]
        return output  # type: ignore[return-value]

    def translate_folder(self, src: str | os.PathLike[str], dst: str | os.PathLike[str], *,
                         style_ref: str | os.PathLike[str] | None = None, domain: str | None = None,
                         num_styles: int = 1, seed: int = 0, progress: ProgressFn | None = None,
                         video_codec: str | None = None, crf: int = 18, **options: Any) -> TranslateResult:
        """Translate every image (and video) under `src` into `dst` as `i2i translate` does; `options` are its
        options (batch_size, resize, keep_size, overwrite, skip_existing, threads, max_pixels, save_masks, tile,
        overlap, blend). Bad files are listed in the result, not raised. Videos (mp4, mov, mkv, webm, avi) keep
        their frame rate, frame count, size and audio; `video_codec` (default H.264) and `crf` set the encoder."""
        from i2i_cli.video import VideoOptions, list_videos

        opts = self.options(**options)
        check_ranges({"num_styles": num_styles, "crf": crf})
        source = Path(src)
        check_output_target(source, dst)  # images and videos alike: a writable OUT, before any work
        videos = list_videos(source) if source.exists() else []
        if videos:  # no output of the run may land on any input, images and videos together
            check_translation(source, dst, opts, videos=videos)
            remove_stale_temporaries(Path(dst))  # a killed run's half-encoded videos
        if not videos:
            return self._translate_images(src, dst, style_ref, domain, num_styles, seed, progress, opts)
        has_images = (source.is_dir() and bool(list_images(source))) or (source.is_file() and is_image_file(source))
        result = (self._translate_images(src, dst, style_ref, domain, num_styles, seed, progress, opts)
                  if has_images else TranslateResult(device=self.device, precision=self.precision_ran))
        translator = self._translator(style_ref, domain, seed)  # one style for a whole video
        video_options = VideoOptions(codec=video_codec, crf=crf, batch_size=opts.batch_size)
        return _translate_videos(source, Path(dst), videos, translator, opts, video_options, result, progress)

    def _translate_images(self, src: str | os.PathLike[str], dst: str | os.PathLike[str], style_ref: Any,
                          domain: str | None, num_styles: int, seed: int, progress: ProgressFn | None,
                          opts: TranslateOptions) -> TranslateResult:
        result = self._translate_image_files(src, dst, style_ref, domain, num_styles, seed, progress, opts)
        result.precision = self.precision_ran
        return result

    def _translate_image_files(self, src: str | os.PathLike[str], dst: str | os.PathLike[str], style_ref: Any,
                               domain: str | None, num_styles: int, seed: int, progress: ProgressFn | None,
                               opts: TranslateOptions) -> TranslateResult:
        if self._styles is not None:
            if style_ref is None and domain is None:
                raise ConfigError(f"{self._styles.name} needs a target: a style reference (--style-ref / style_ref=) "
                                  f"or a domain (--domain / domain=): {', '.join(self._styles.domains)}")
            return translate_with_styles(src, dst, self._styles, style_ref=Path(style_ref) if style_ref else None,
                                         domain=domain, num_styles=num_styles, seed=seed, options=opts,
                                         progress=progress)
        self._refuse_styles(style_ref, domain)
        if opts.save_masks and getattr(self._single, "mask_net", None) is None:
            where = ("an ONNX file carries none; translate with the run folder" if self.loaded is None
                     else f"{self.name} has none; attention methods (agcyclegan) do")
            raise ConfigError(f"save_masks: no attention masks here ({where})")
        return translate_folder(src, dst, self._single, opts, progress)

    def options(self, **options: Any) -> TranslateOptions:
        """TranslateOptions with this translator's direction, device and precision; unknown names refused."""
        known = set(TranslateOptions.__dataclass_fields__) - {"direction", "device", "precision"}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ConfigError(f"translate_folder: unknown option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        check_ranges(options)  # batch_size=0, tile=-1...: the CLI's ranges and messages
        return TranslateOptions(direction=self.direction, device=self._requested_device, precision=self.precision,
                                **options)

    # --- pieces ----------------------------------------------------------------------------------------------
    def _refuse_styles(self, style_ref: Any, domain: str | None) -> None:
        if style_ref is not None or domain is not None:
            name = self.loaded.method.name if self.loaded is not None else "this model"
            raise ConfigError(no_styles(name))

    def _translator(self, style_ref: Any, domain: str | None, seed: int) -> Any:
        """The single translator, or a multi-domain model's generator with the style the caller asked for."""
        if self._styles is None:
            self._refuse_styles(style_ref, domain)
            return self._single
        styles = self._styles
        if style_ref is not None:
            if domain is None and isinstance(style_ref, (str, os.PathLike)) and Path(style_ref).parent.name in styles.domains:
                domain = Path(style_ref).parent.name  # as the CLI: a reference's folder names its domain
            if domain is None:
                raise ConfigError(f"style_ref: pass domain= ({', '.join(styles.domains)}) for this reference")
            return styles.translator(styles.from_reference(_reference_tensor(style_ref), domain_index(styles, domain)))
        if domain is None:
            raise ConfigError(f"{styles.name} needs a target: style_ref=IMAGE, or domain=D ({', '.join(styles.domains)}) "
                              "for a latent-guided output")
        z = torch.randn(1, styles.latent_dim, generator=torch.Generator().manual_seed(seed))
        return styles.translator(styles.from_latent(z, domain_index(styles, domain)))


def _translate_videos(source: Path, dst: Path, videos: list[Path], translator: Any, opts: TranslateOptions,
                      video_options: Any, result: TranslateResult, progress: ProgressFn | None) -> TranslateResult:
    """Each video through `translator` (frames batched, as images are); progress counts frames."""
    import time

    from i2i_cli.errors import BadImageError
    from i2i_cli.video import count_frames, translate_video, video_output_path

    start = time.time()
    totals = {v: count_frames(v) for v in videos}
    total, done = sum(totals.values()), 0
    for video in videos:
        target = video_output_path(source, video, dst)
        if skip_existing_output(video, target, opts):
            result.skipped += 1
            continue

        def report(frames: int, offset: int = done) -> None:
            if progress:
                progress(offset + frames, max(total, offset + frames))

        def run_batch(arrays: list[np.ndarray]) -> list[np.ndarray]:
            return run_array(translator, arrays, opts.tile, opts.overlap, opts.blend)

        try:
            done += translate_video(video, target, run_batch, video_options, report, overwrite=opts.overwrite)
            result.written.append(target)
        except BadImageError as exc:
            result.bad.append((str(video), exc.reason))
            done += totals[video]
    result.seconds += time.time() - start
    return result


def _as_array(image: Any) -> tuple[np.ndarray, str]:
    """A uint8 (H, W, 3) array of a PIL image or an array, and which of the two it was."""
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ConfigError(f"an array image must be uint8 (H, W, 3), got {image.dtype} {image.shape}; "
                              "pass float images as a (N, 3, H, W) tensor in [-1, 1]")
        return np.ascontiguousarray(image), "array"
    if hasattr(image, "convert") and hasattr(image, "size"):
        return np.asarray(image.convert("RGB")), "pil"
    raise ConfigError(f"cannot translate a {type(image).__name__}: pass a PIL image, a uint8 (H, W, 3) array or a "
                      "float (N, 3, H, W) tensor in [-1, 1]")


def _reference_tensor(ref: Any) -> torch.Tensor:
    """A style reference (path, PIL image, uint8 array or tensor) as float (1, 3, H, W) in [-1, 1]."""
    if isinstance(ref, torch.Tensor):
        return ref if ref.ndim == 4 else ref[None]
    if isinstance(ref, (str, os.PathLike)):
        from i2i_cli.data.images import load_image

        array = load_image(Path(ref))
    else:
        array = np.array(_as_array(ref)[0])  # a writable copy: torch refuses to share read-only memory
    return to_tensor(array)[None]


def _run_tensor(translator: Any, x: torch.Tensor, tile: int, overlap: int, blend: str) -> torch.Tensor:
    """Float (N, 3, H, W) in [-1, 1] -> the same shape, padded and cropped (or tiled) as the CLI does."""
    if x.ndim != 4 or x.shape[1] != 3 or not x.is_floating_point():
        raise ConfigError(f"a tensor image must be float (N, 3, H, W) in [-1, 1], got {x.dtype} {tuple(x.shape)}")
    h, w = x.shape[-2:]
    if min(h, w) < translator.min_size:
        raise ConfigError(f"{w}x{h} is smaller than this network takes ({translator.min_size} px)")
    source = x.detach().float().cpu()
    if tile and max(h, w) > tile:
        check_tile_options(translator, tile, overlap, blend)  # the CLI's rule and message
        y = run_tiled(translator, source, tile, overlap, blend)
    else:
        padded, _ = pad_to_multiple(source, translator.size_multiple)
        y = translator(padded)[..., :h, :w]
    return y.clamp(-1, 1).to(x.device, x.dtype)


def load(checkpoint: str | os.PathLike[str] | None, device: str = "auto", *, direction: str = "AtoB",
         precision: str = "auto") -> Translator:
    """A Translator for a run folder, a checkpoint, an .onnx file, a Hub-layout folder or hf://owner/name[@rev]."""
    return Translator(checkpoint, device, direction=direction, precision=precision)
