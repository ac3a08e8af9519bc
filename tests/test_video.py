"""`i2i translate` on video files: frames in = frames out, same size and rate, audio copied, bad videos listed."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

import i2i_cli
from i2i_cli.main import app
from tests.run_factory import make_run

av = pytest.importorskip("av", reason="the [video] extra (PyAV) is not installed")
runner = CliRunner()


def _clip(path, frames=10, rate=12, size=(48, 32), audio=True, video=True):
    """A short clip: frames of a moving gradient at `rate` fps, with a mono AAC track."""
    out = av.open(str(path), "w")
    stream = out.add_stream("libx264", rate=rate) if video else None
    sound = out.add_stream("aac", rate=8000) if audio else None  # every stream before the first packet
    if stream is not None:
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        ramp = np.linspace(0, 255, size[0], dtype=np.float32)
        for i in range(frames):
            array = np.stack([np.tile(np.roll(ramp, 4 * i), (size[1], 1))] * 3, axis=-1).astype(np.uint8)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")))
        out.mux(stream.encode(None))
    if sound is not None:
        for k in range(8):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 8000, k * 1024
            out.mux(sound.encode(frame))
        out.mux(sound.encode(None))
    out.close()
    return path


def _decoded(path):
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
        return frames, stream.average_rate, len(container.streams.audio)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("video_runs") / "p2p", "pix2pix")


def test_ten_frames_in_ten_frames_out_same_size_rate_and_audio(run, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    clip = _clip(src / "clip.mp4")
    result = runner.invoke(app, ["translate", "-c", str(run), str(src), str(tmp_path / "out"), "--device", "cpu",
                                 "--batch-size", "4", "--json", str(tmp_path / "t.json")])
    assert result.exit_code == 0, result.output
    frames, rate, audio = _decoded(tmp_path / "out" / "clip.mp4")
    inputs, in_rate, _ = _decoded(clip)
    assert len(frames) == 10 and frames[0].shape == (32, 48, 3) and rate == in_rate == 12 and audio == 1
    with av.open(str(tmp_path / "out" / "clip.mp4")) as container:
        assert container.streams.video[0].codec_context.name == "h264"
    translator = i2i_cli.load(run, device="cpu")
    # each output frame is the translation of its own input frame (in order), up to H.264's loss (4:2:0 chroma)
    expected = [translator(source).astype(int) for source in inputs]
    for i, got in enumerate(frames):
        own = np.abs(got.astype(int) - expected[i]).mean()
        other = np.abs(got.astype(int) - expected[(i + 5) % 10]).mean()
        assert own < 10 and own < other, (i, own, other)
    assert json.loads((tmp_path / "t.json").read_text())["written"] == [str(tmp_path / "out" / "clip.mp4")]


def test_videos_next_to_images_bad_videos_listed_codec_option(run, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    from PIL import Image

    Image.new("RGB", (40, 40), (20, 90, 200)).save(src / "still.png")
    whole = _clip(src / "good.mkv", frames=3, audio=False).read_bytes()
    (src / "cut.mp4").write_bytes(_clip(tmp_path / "full.mp4").read_bytes()[:1500])  # truncated
    _clip(src / "sound_only.mkv", video=False)
    (src / "good.mkv").write_bytes(whole)
    result = runner.invoke(app, ["translate", "-c", str(run), str(src), str(tmp_path / "out"), "--device", "cpu",
                                 "--video-codec", "mpeg4"])
    assert result.exit_code == 1, result.output
    assert "cut.mp4" in result.output and "sound_only.mkv" in result.output and "no video stream" in result.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good.mkv", "still.png"]
    frames, _, _ = _decoded(tmp_path / "out" / "good.mkv")
    assert len(frames) == 3
    with av.open(str(tmp_path / "out" / "good.mkv")) as container:
        assert container.streams.video[0].codec_context.name == "mpeg4"
    again = runner.invoke(app, ["translate", "-c", str(run), str(src / "good.mkv"), str(tmp_path / "out"), "--device", "cpu"])
    assert again.exit_code == 0 and "│ 1" in again.output.split("skipped")[1].split("\n")[0]  # kept, not replaced
