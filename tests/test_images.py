"""Image I/O: every input kind becomes RGB uint8 explicitly; bad files are one-line errors; writes are atomic."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from i2i_cli.data.images import list_images, load_image, save_image
from i2i_cli.errors import BadImageError
from i2i_cli.fsutil import OutputExistsError


def test_grey_16bit_palette_cmyk_rgba_become_rgb(tmp_path):
    grey = np.arange(64, dtype=np.uint8).reshape(8, 8) * 4
    Image.fromarray(grey, "L").save(tmp_path / "grey.png")
    Image.fromarray(grey.astype(np.uint16) * 257).save(tmp_path / "g16.png")
    Image.fromarray(grey, "L").convert("P").save(tmp_path / "pal.png")
    Image.new("CMYK", (8, 8), (0, 255, 255, 0)).save(tmp_path / "cmyk.jpg")
    rgba = np.zeros((8, 8, 4), dtype=np.uint8)
    rgba[..., 0] = 200
    rgba[:4, :, 3] = 255  # top half opaque red, bottom half fully transparent
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")

    for name in ("grey.png", "g16.png", "pal.png", "cmyk.jpg", "rgba.png"):
        arr = load_image(tmp_path / name)
        assert arr.dtype == np.uint8 and arr.shape == (8, 8, 3), name
    assert np.array_equal(load_image(tmp_path / "grey.png")[..., 0], grey)
    assert np.array_equal(load_image(tmp_path / "g16.png")[..., 1], grey)  # 16-bit scaled down, not clipped
    red = load_image(tmp_path / "cmyk.jpg")[0, 0]
    assert red[0] > 200 and red[1] < 60
    rgba_out = load_image(tmp_path / "rgba.png")
    assert tuple(rgba_out[0, 0]) == (200, 0, 0) and tuple(rgba_out[7, 0]) == (255, 255, 255)


def test_exif_orientation_is_applied(tmp_path):
    img = Image.new("RGB", (20, 10), (0, 0, 255))
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90 on display
    img.save(tmp_path / "rot.jpg", exif=exif)
    assert load_image(tmp_path / "rot.jpg").shape == (20, 10, 3)


@pytest.mark.parametrize(
    "content, reason",
    [(b"", "empty file"), (b"hello, I am text", "not a readable image"), (None, "corrupt or truncated")],
)
def test_bad_files_raise_one_line_errors_naming_the_file(tmp_path, content, reason):
    path = tmp_path / "bad.png"
    if content is None:
        Image.new("RGB", (64, 64), (1, 2, 3)).save(path)
        path.write_bytes(path.read_bytes()[:60])
    else:
        path.write_bytes(content)
    with pytest.raises(BadImageError) as info:
        load_image(path)
    assert str(path) in str(info.value) and reason in str(info.value)
    assert "\n" not in str(info.value)


def test_pixel_limit_refuses_bombs_and_can_be_raised(tmp_path):
    Image.new("RGB", (300, 300)).save(tmp_path / "big.png")
    with pytest.raises(BadImageError, match="--max-pixels"):
        load_image(tmp_path / "big.png", max_pixels=10_000)
    assert load_image(tmp_path / "big.png", max_pixels=100_000).shape == (300, 300, 3)


def test_save_is_atomic_and_refuses_to_overwrite(tmp_path):
    arr = np.full((4, 4, 3), 7, dtype=np.uint8)
    save_image(arr, tmp_path / "a" / "x.png")
    with pytest.raises(OutputExistsError, match="--overwrite"):
        save_image(arr, tmp_path / "a" / "x.png")
    save_image(arr * 2, tmp_path / "a" / "x.png", overwrite=True)
    assert load_image(tmp_path / "a" / "x.png")[0, 0, 0] == 14
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["x.png"]


def test_list_images_is_recursive_sorted_and_skips_hidden_and_temporaries(tmp_path):
    for rel in ("b.png", "a/c.jpg", ".hidden/d.png", "a/.i2i-tmp-e.png", "notes.txt", "feat.npy"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    assert [p.relative_to(tmp_path).as_posix() for p in list_images(tmp_path)] == ["a/c.jpg", "b.png"]
