"""`i2i app` in a real browser: the system's Chromium, headless, driven by Playwright. Open the page, upload an
image, translate, download the output and compare it with `i2i translate`'s; save a screenshot.

Runs wherever /usr/bin/chromium exists; skipped elsewhere, except in CI (CI set), where it must run (.ci/run
installs Debian's chromium package). I2I_SCREENSHOT_DIR=docs/img saves the screenshot for docs/serve.md."""

from __future__ import annotations

import io
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from i2i_cli.data.images import load_image
from i2i_cli.main import app
from tests.run_factory import make_run

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists() and not os.environ.get("CI"):
    pytest.skip("no system Chromium (apt-get install chromium); CI must have it", allow_module_level=True)
pytest.importorskip("gradio", reason="the [app] extra (gradio) is not installed")
playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (the [dev] extra)")

# the flags Chromium needs on a machine without a display or outside network, as root in a container
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _picture(h: int, w: int) -> np.ndarray:
    """A smooth picture (gradients and a disc) that reads well in the screenshot."""
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    disc = ((x - 0.55) ** 2 + (y - 0.45) ** 2 < 0.08).astype(float)
    rgb = np.stack([x, y, 0.6 * disc + 0.2 * (1 - x)], axis=2)
    return (rgb.clip(0, 1) * 255).astype(np.uint8)


def _wait_for(url: str, process: subprocess.Popen[bytes], log: Path, seconds: float = 240) -> None:
    deadline = time.time() + seconds
    while True:
        assert process.poll() is None, log.read_text()
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        assert time.time() < deadline, "the page did not come up: " + log.read_text()
        time.sleep(0.5)


def test_page_in_headless_chromium_matches_the_cli(tmp_path):
    run = make_run(tmp_path / "run", "starganv2")
    (tmp_path / "in").mkdir()
    Image.fromarray(_picture(48, 64)).save(tmp_path / "in" / "photo.png")
    port = _free_port()
    log = tmp_path / "app.log"
    with log.open("w") as out:
        process = subprocess.Popen([sys.executable, "-m", "i2i_cli", "app", str(run), "--port", str(port),
                                    "--device", "cpu", "--precision", "fp32"], stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        result = CliRunner().invoke(app, ["translate", str(tmp_path / "in"), str(tmp_path / "cli"), "-c", str(run),
                                          "--domain", "cat", "--seed", "0", "--device", "cpu", "--precision", "fp32"])
        assert result.exit_code == 0, result.output
        expected = load_image(next((tmp_path / "cli").rglob("*.png")))
        url = f"http://127.0.0.1:{port}/"
        _wait_for(url, process, log)
        shot = tmp_path / "serve-app.png"
        got = _drive_page(url, tmp_path / "in" / "photo.png", shot, tmp_path / "profile")
        assert np.array_equal(got, expected), "the page's output differs from i2i translate's"
        if os.environ.get("I2I_SCREENSHOT_DIR"):
            shutil.copy(shot, Path(os.environ["I2I_SCREENSHOT_DIR"]) / shot.name)
    finally:
        os.killpg(process.pid, 15)
        process.wait(timeout=30)


def _drive_page(url: str, image: Path, shot: Path, profile: Path) -> np.ndarray:
    """Upload `image`, translate it (domain cat and seed 0 are the page's defaults), download the output."""
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch_persistent_context(str(profile), executable_path=str(CHROMIUM), args=FLAGS,
                                                       headless=True, viewport={"width": 1300, "height": 900})
        try:
            page = browser.new_page()
            page.goto(url)
            page.wait_for_selector("#i2i-translate", timeout=60_000)
            assert "starganv2" in page.inner_text("#i2i-facts") and "StarGAN v2" in page.inner_text("#i2i-facts")
            page.set_input_files("#i2i-input input[type=file]", str(image))
            page.wait_for_selector("#i2i-input img", timeout=60_000)
            page.click("#i2i-translate")
            link = page.wait_for_selector("#i2i-download a", timeout=120_000)
            page.wait_for_selector("#i2i-slider img", timeout=60_000)
            page.screenshot(path=str(shot), full_page=True)
            response = page.request.get(link.get_attribute("href") or "")
            assert response.ok, response.status
            return np.asarray(Image.open(io.BytesIO(response.body())).convert("RGB"))
        finally:
            browser.close()
