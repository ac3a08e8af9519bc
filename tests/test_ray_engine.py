"""The Ray engine (`--engine ray`) on a local Ray with 2 CPUs, started once for this module: a folder and an
s3:// prefix (a real S3-compatible server, moto's, on loopback) translate byte for byte as the local engine
does; an actor killed mid-task loses and duplicates nothing; FID / KID equal the one-process values."""

from __future__ import annotations

import hashlib
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from i2i_cli.main import app
from tests.run_factory import make_run

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray for the module (start and stop cost seconds): 2 CPUs, no dashboard."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    return make_run(tmp_path_factory.mktemp("ray_run") / "run", "pix2pix")


def _images(folder: Path, n: int = 10, bad: bool = True) -> Path:
    """n small images in two sub-folders, a .webp beside a same-named .png (the collision rule), a bad file."""
    rng = np.random.default_rng(3)
    for i in range(n):
        sub = folder / ("a" if i % 2 else "b")
        sub.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (40, 36 + 4 * (i % 3), 3), dtype=np.uint8)).save(sub / f"{i:02d}.png")
    Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(folder / "a" / "01.webp", lossless=True)
    if bad:
        (folder / "b" / "broken.png").write_bytes(b"not an image")
    return folder


def _digests(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _translate(*args: str) -> dict:
    result = CliRunner().invoke(app, ["translate", *args])
    assert result.exit_code in (0, 1), result.output
    return result


def test_a_folder_through_ray_equals_the_local_engine_byte_for_byte_though_an_actor_dies(local_ray, run, tmp_path):
    source = _images(tmp_path / "in", n=12)
    local = _translate(str(source), str(tmp_path / "local"), "-c", str(run))
    assert local.exit_code == 1  # the broken file
    marker = tmp_path / "died"
    from i2i_cli.inference import TranslateOptions
    from i2i_cli.ray_engine import RayOptions, translate_on_ray

    # the test hook: the first actor past its first batch exits in the middle of a task; Ray restarts it and
    # retries the task, whose outputs are written again whole
    result = translate_on_ray(source, tmp_path / "ray", run, TranslateOptions(),
                              RayOptions(actors=2, fail_once=str(marker)))
    assert marker.exists()
    assert _digests(tmp_path / "ray") == _digests(tmp_path / "local")  # every output once, complete
    assert {"a/01.png", "a/01.webp.png"} <= set(_digests(tmp_path / "ray"))  # the local collision rule
    assert len(result.written) == len(set(result.written)) == 13 and result.engine == "ray" and result.workers == 2
    assert result.bad == [(str(source / "b" / "broken.png"), result.bad[0][1])] and "not a readable" in result.bad[0][1]


def test_existing_outputs_are_refused_before_the_work_without_skip_existing(run, tmp_path):
    source = _images(tmp_path / "in", n=2, bad=False)
    (tmp_path / "out" / "a").mkdir(parents=True)
    (tmp_path / "out" / "a" / "01.png").write_bytes(b"mine")
    result = CliRunner().invoke(app, ["translate", str(source), str(tmp_path / "out"), "-c", str(run), "--engine",
                                      "ray", "--no-skip-existing"])
    assert result.exit_code == 2 and "already exists" in result.output
    assert (tmp_path / "out" / "a" / "01.png").read_bytes() == b"mine"
    inside = CliRunner().invoke(app, ["translate", str(source), str(source / "out"), "-c", str(run), "--engine", "ray"])
    assert inside.exit_code == 2 and "inside the input folder" in inside.output


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def s3_server(monkeypatch):
    """moto's S3 server on loopback (a real HTTP server the clients talk to, not a mocked client)."""
    pytest.importorskip("moto.server")
    port = _free_port()
    process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    env = {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    yield env
    process.terminate()
    process.wait(timeout=10)


def test_s3_in_and_out_through_ray_equal_the_local_engine(local_ray, run, tmp_path, s3_server):
    from pyarrow import fs

    store = fs.S3FileSystem(endpoint_override=s3_server["AWS_ENDPOINT_URL"], access_key="testing",
                            secret_key="testing", region="us-east-1", allow_bucket_creation=True)
    store.create_dir("photos")
    source = _images(tmp_path / "in", n=6)
    for file in sorted(p for p in source.rglob("*") if p.is_file()):
        with store.open_output_stream(f"photos/in/{file.relative_to(source).as_posix()}") as stream:
            stream.write(file.read_bytes())
    _translate(str(source), str(tmp_path / "local"), "-c", str(run))
    from i2i_cli.inference import TranslateOptions
    from i2i_cli.ray_engine import RayOptions, translate_on_ray

    # the module's Ray started before these variables were set: they reach the actors with the job
    result = translate_on_ray("s3://photos/in", "s3://photos/out", run, TranslateOptions(), RayOptions(actors=2))
    written, bad = len(result.written), result.bad
    assert written == 7 and [problem for _, problem in bad] and bad[0][0] == "s3://photos/in/b/broken.png"
    outputs = {info.path.removeprefix("photos/out/"): info for info in
               store.get_file_info(fs.FileSelector("photos/out", recursive=True)) if info.type == fs.FileType.File}
    local = _digests(tmp_path / "local")
    assert set(outputs) == set(local)
    for name, digest in local.items():
        with store.open_input_stream(f"photos/out/{name}") as stream:
            assert hashlib.sha256(stream.read()).hexdigest() == digest, name


def test_fid_and_kid_through_ray_equal_the_one_process_values(local_ray, tmp_path_factory, tmp_path):
    from tests.test_evaluation import _folder, _stand_in_dir

    weights = _stand_in_dir(tmp_path_factory, 16)  # 16 features: more images than features, FID from the moments
    real, fake = _folder(tmp_path / "real", 1, n=21), _folder(tmp_path / "fake", 2, n=19, tint=50)
    (fake / "broken.png").write_bytes(b"not a png")
    values = {}
    for engine in ("local", "ray"):
        result = CliRunner().invoke(app, ["eval", "--real", str(real), "--fake", str(fake), "--weights-dir",
                                          str(weights), "--engine", engine, "--batch-size", "4", "--kid-subsets", "5",
                                          "--kid-subset-size", "8", "--json", str(tmp_path / f"{engine}.json")])
        assert result.exit_code == 1, result.output  # scored, the broken file listed: a partial failure
        values[engine] = json.loads((tmp_path / f"{engine}.json").read_text())
    local, on_ray = values["local"], values["ray"]
    for key in ("fid", "kid_mean", "kid_std"):
        assert on_ray[key] == pytest.approx(local[key], rel=1e-6, abs=0), key
    assert on_ray["protocol"]["engine"]["name"] == "ray" and on_ray["protocol"]["engine"]["actors"] >= 1
    assert on_ray["protocol"]["n_fake"] == local["protocol"]["n_fake"] == 19
    assert [b["file"] for b in on_ray["bad_files"]] == [b["file"] for b in local["bad_files"]]


def test_the_moments_merged_from_batches_equal_numpys_mean_and_covariance():
    from i2i_cli.ray_engine.evaluate import Moments

    rng = np.random.default_rng(0)
    features = rng.normal(3.0, 0.5, (50, 6))
    moments = Moments(6)
    for start in (0, 7, 8, 30):  # uneven batches
        moments.add(features[start: {0: 7, 7: 8, 8: 30, 30: 50}[start]])
    n, mean, cov = moments.result()
    assert n == 50
    np.testing.assert_allclose(mean, features.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(cov, np.cov(features, rowvar=False), rtol=1e-10)


def test_a_missing_ray_is_the_usual_one_line_error(run, tmp_path, monkeypatch):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *args: None if name == "ray" else find_spec(name, *args))
    source = _images(tmp_path / "in", n=2, bad=False)
    for command in (["translate", str(source), str(tmp_path / "out"), "-c", str(run)],
                    ["eval", "--real", str(source), "--fake", str(source)]):
        result = CliRunner().invoke(app, [*command, "--engine", "ray"])
        assert result.exit_code == 2 and "pip install 'i2i[ray]'" in result.output, result.output
        assert len(result.output.strip().splitlines()) == 1
