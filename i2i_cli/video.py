"""Video files through a translator (PyAV): frames decoded, batched, translated, encoded at the same rate,
frame count and size; the audio stream is copied as it is. The output is written to a temporary name and
renamed, so a failed video leaves nothing behind."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from i2i_cli.errors import BadImageError, ConfigError
from i2i_cli.fsutil import TEMP_MARKER, atomic_path

VIDEO_EXTENSIONS = (".mp4", ".mov", ".mkv", ".webm", ".avi")
CONTAINER_FORMATS = {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm", ".avi": "avi"}
DEFAULT_CODEC = "libx264"  # H.264; WebM holds only VP8/VP9/AV1, so .webm outputs default to VP9
WEBM_CODEC = "libvpx-vp9"

FrameProgress = Callable[[int], None]  # frames done so far, in this video


@dataclass
class VideoOptions:
    codec: str | None = None  # None: H.264 (VP9 for .webm)
    crf: int = 18  # constant rate factor: lower is better quality and bigger files
    batch_size: int = 1


def is_video_file(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_EXTENSIONS and not path.name.startswith(TEMP_MARKER)


def list_videos(root: Path) -> list[Path]:
    if root.is_file():
        return [root] if is_video_file(root) else []
    return sorted(p for p in root.rglob("*") if p.is_file() and is_video_file(p) and not p.name.startswith("."))


def require_av() -> Any:
    from i2i_cli.extras import require_extra

    require_extra("av", "video", "video files")
    import av

    return av


def _codec_for(target: Path, options: VideoOptions, av: Any) -> str:
    codec = options.codec or (WEBM_CODEC if target.suffix.lower() == ".webm" else DEFAULT_CODEC)
    if codec not in av.codecs_available:
        raise ConfigError(f"--video-codec {codec}: this FFmpeg build has no such encoder; try libx264, mpeg4 or "
                          "libvpx-vp9")
    return codec


def _frames(container: Any, video: Any, audio: Any, copy_audio: Callable[[Any], None]) -> Iterator[np.ndarray]:
    """Decoded RGB frames in order; audio packets are handed to `copy_audio` as they are demuxed."""
    streams = [video] + ([audio] if audio is not None else [])
    for packet in container.demux(*streams):
        if packet.stream is audio:
            if packet.dts is not None:
                copy_audio(packet)
            continue
        for frame in packet.decode():
            yield frame.to_ndarray(format="rgb24")


def translate_video(source: Path, target: Path, run_batch: Callable[[list[np.ndarray]], list[np.ndarray]],
                    options: VideoOptions, progress: FrameProgress | None = None, overwrite: bool = False) -> int:
    """Translate one video into `target`; the number of frames written. A video that cannot be read (no video
    stream, truncated, not a video) raises BadImageError naming it, like an unreadable image."""
    av = require_av()
    try:
        container = av.open(str(source))
    except (av.error.FFmpegError, OSError) as exc:
        raise BadImageError(source, f"not a readable video ({str(exc).splitlines()[0][:160]})") from None
    with container:
        if not container.streams.video:
            raise BadImageError(source, "has no video stream")
        video = container.streams.video[0]
        context = video.codec_context
        if context is None or not context.width or not context.height:
            raise BadImageError(source, "truncated or incomplete video (its video stream has no frame size)")
        audio = container.streams.audio[0] if container.streams.audio else None
        rate = video.average_rate or video.guessed_rate or Fraction(25)
        codec = _codec_for(target, options, av)
        with atomic_path(target, overwrite=overwrite) as tmp:
            return _transcode(av, container, video, audio, rate, codec, tmp, target, run_batch, options, progress)


def _transcode(av: Any, container: Any, video: Any, audio: Any, rate: Fraction, codec: str, tmp: Path,
               target: Path, run_batch: Callable[[list[np.ndarray]], list[np.ndarray]], options: VideoOptions,
               progress: FrameProgress | None) -> int:
    out = av.open(str(tmp), mode="w", format=CONTAINER_FORMATS[target.suffix.lower()])
    with out:
        stream = out.add_stream(codec, rate=rate)
        stream.width, stream.height = video.codec_context.width, video.codec_context.height
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(options.crf)} if codec in ("libx264", "libx265", "libvpx-vp9") else {}
        audio_out = out.add_stream_from_template(audio) if audio is not None else None

        def copy_audio(packet: Any) -> None:
            packet.stream = audio_out
            out.mux(packet)

        written = 0
        batch: list[np.ndarray] = []

        def flush() -> None:
            nonlocal written
            for array in run_batch(batch):
                frame = av.VideoFrame.from_ndarray(array, format="rgb24")
                frame.pts, frame.time_base = written, Fraction(1) / rate
                out.mux(stream.encode(frame))
                written += 1
            batch.clear()
            if progress:
                progress(written)

        try:
            for array in _frames(container, video, audio, copy_audio):
                if batch and len(batch) >= options.batch_size:
                    flush()
                batch.append(array)
            if batch:
                flush()
        except av.error.FFmpegError as exc:
            raise BadImageError(container.name, f"truncated or corrupt video after {written} frames "
                                                f"({str(exc).splitlines()[0][:120]})") from None
        if written == 0:
            raise BadImageError(container.name, "has no decodable video frames (truncated?)")
        if video.frames and written < video.frames:  # the container says how many; fewer decoded: cut short
            raise BadImageError(container.name, f"truncated: {written} of the {video.frames} frames it declares")
        out.mux(stream.encode(None))
    return written


def video_output_path(source: Path, file: Path, out: Path) -> Path:
    relative = file.relative_to(source) if source.is_dir() else Path(file.name)
    return out / relative


def count_frames(path: Path) -> int:
    """The frame count the container declares (0 when it does not say): for progress totals only."""
    av = require_av()
    try:
        with av.open(str(path)) as container:
            return int(container.streams.video[0].frames) if container.streams.video else 0
    except (av.error.FFmpegError, OSError):
        return 0
