"""`i2i serve` under load on loopback: 200 requests from 8 concurrent clients, mixed sizes and a few bad ones.
Every good request gets the image `i2i translate` writes; every bad one a 4xx with a one-line JSON reason;
requests arriving together are batched; the server is alive at the end. The batching and request checks are
also run in-process for the other kinds of model (StarGAN v2 styles, an .onnx export)."""

from __future__ import annotations

import http.client
import inspect
import io
import json
import os
import random
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from i2i_cli.data.images import load_image
from i2i_cli.main import app
from tests.run_factory import make_run

pytest.importorskip("litserve", reason="the [serve] extra (litserve) is not installed")

runner = CliRunner()
SIZES = {"square": (32, 32), "wide": (40, 56), "tall": (64, 48)}  # (H, W)
MAX_PIXELS = 5000  # 64x48 passes, 80x80 is refused


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _request(port: int, method: str, path: str, body: bytes | None = None,
             headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def _multipart(fields: dict[str, str], files: dict[str, bytes]) -> tuple[bytes, str]:
    boundary = "i2i-test-boundary"
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
             for k, v in fields.items()]
    parts += [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"; filename="{k}.png"\r\n'
              f"Content-Type: image/png\r\n\r\n".encode() + data + b"\r\n" for k, data in files.items()]
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A pix2pix run served by `i2i serve` in its own process, the inputs, and the CLI's outputs for them."""
    root = tmp_path_factory.mktemp("serve")
    run = make_run(root / "run", "pix2pix")
    port = _free_port()
    command = [sys.executable, "-m", "i2i_cli", "serve", str(run), "--port", str(port), "--device", "cpu",
               "--max-batch", "8", "--batch-timeout", "0.1", "--max-pixels", str(MAX_PIXELS), "--max-mb", "0.05",
               "--precision", "fp32"]
    log = (root / "serve.log").open("w")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    rng = np.random.default_rng(0)
    inputs = root / "in"
    inputs.mkdir()
    for name, (h, w) in SIZES.items():
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(inputs / f"{name}.png")
    # fp32 both ways: on a CPU with native bf16, --precision auto (both commands' default) would pick bf16
    result = runner.invoke(app, ["translate", str(inputs), str(root / "cli"), "-c", str(run), "--device", "cpu",
                                 "--precision", "fp32"])
    assert result.exit_code == 0, result.output
    expected = {name: load_image(root / "cli" / f"{name}.png") for name in SIZES}
    try:
        deadline = time.time() + 240  # two Python processes importing torch on a shared 2-core machine
        while True:
            assert process.poll() is None, (root / "serve.log").read_text()
            try:
                if _request(port, "GET", "/health")[0] == 200:
                    break
            except OSError:
                pass
            assert time.time() < deadline, "the server did not get ready: " + (root / "serve.log").read_text()
            time.sleep(0.5)
        yield {"port": port, "process": process, "inputs": inputs, "expected": expected, "log": root / "serve.log"}
    finally:
        os.killpg(process.pid, 15)  # the server and the worker process it started
        process.wait(timeout=30)
        log.close()


def _bad_requests(inputs: Path) -> list[tuple[str, bytes, dict[str, str], int, str]]:
    """(path, body, headers, expected status, words of the reason)."""
    big = _png(np.zeros((80, 80, 3), np.uint8))
    square = (inputs / "square.png").read_bytes()
    body, content_type = _multipart({"domain": "cat"}, {"image": square})
    return [
        ("/translate", b"not an image at all", {}, 400, "not a readable image"),
        ("/translate", big, {}, 413, "past the limit"),
        ("/translate", square, {"Accept": "text/html"}, 406, "Accept text/html"),
        ("/translate?colour=red", square, {}, 400, "unknown field(s) colour"),
        ("/translate?tile=abc", square, {}, 400, "tile=abc: not an integer"),
        ("/translate?direction=BtoA", square, {}, 400, "direction BtoA"),
        ("/translate", body, {"Content-Type": content_type}, 400, "takes neither"),
        ("/translate", b"", {}, 400, "empty request"),
        ("/translate", _png(np.zeros((4, 4, 3), np.uint8)), {}, 400, "smaller than this network takes"),
        ("/translate", os.urandom(60 * 1024), {}, 413, ""),
    ]


def test_load_200_requests_8_clients_mixed_sizes_and_bad_ones(served):
    port, inputs, expected = served["port"], served["inputs"], served["expected"]
    rng = random.Random(0)
    good = [rng.choice(list(SIZES)) for _ in range(190)]
    jobs: list[tuple[str, object]] = [("good", name) for name in good] + [("bad", b) for b in _bad_requests(inputs)]
    rng.shuffle(jobs)
    payloads = {name: (inputs / f"{name}.png").read_bytes() for name in SIZES}

    def send(job: tuple[str, object]) -> tuple[tuple[str, object], int, dict[str, str], bytes]:
        kind, what = job
        if kind == "good":
            name = str(what)
            if rng.random() < 0.5:  # half raw bytes, half multipart uploads
                return (job, *_request(port, "POST", "/translate", payloads[name]))
            body, content_type = _multipart({}, {"image": payloads[name]})
            return (job, *_request(port, "POST", "/translate", body, {"Content-Type": content_type}))
        path, body, headers, _, _ = what  # type: ignore[misc]
        return (job, *_request(port, "POST", path, body, headers))

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(send, jobs))
    batches = []
    for (kind, what), status, headers, body in answers:
        if kind == "good":
            assert status == 200, body[:300]
            assert headers["content-type"] == "image/png"
            output = np.asarray(Image.open(io.BytesIO(body)).convert("RGB"))
            assert np.array_equal(output, expected[str(what)]), f"{what}: differs from i2i translate's output"
            batches.append(int(headers["x-i2i-batch"]))
        else:
            _, _, _, want, words = what  # type: ignore[misc]
            assert status == want, (what[0], body[:300])  # type: ignore[index]
            reason = json.loads(body)["detail"]
            assert isinstance(reason, str) and "\n" not in reason and words in reason
    assert max(batches) > 1, "no two requests shared a forward pass"
    assert served["process"].poll() is None
    assert _request(port, "GET", "/health")[:1] == (200,)
    log = served["log"].read_text()
    assert "serve: POST /translate 200 in " in log and "serve: POST /translate 400 in " in log


def test_metadata_openapi_and_accept(served):
    port = served["port"]
    status, _, body = _request(port, "GET", "/metadata")
    facts = json.loads(body)
    assert status == 200 and facts["method"] == "pix2pix" and facts["kind"] == "run" and facts["step"] == 1
    assert facts["size_multiple"] >= 1 and facts["precision"] == "fp32" and "eval" in facts
    spec = json.loads(_request(port, "GET", "/openapi.json")[2])
    assert "post" in spec["paths"]["/translate"] and "/metadata" in spec["paths"]
    assert "multipart/form-data" in spec["paths"]["/translate"]["post"]["requestBody"]["content"]
    square = (served["inputs"] / "square.png").read_bytes()
    status, headers, body = _request(port, "POST", "/translate", square, {"Accept": "image/webp, image/png;q=0.5"})
    assert status == 200 and headers["content-type"] == "image/webp"
    assert Image.open(io.BytesIO(body)).size == (32, 32)


@pytest.mark.parametrize("native_bf16", [True, False])
def test_serve_and_app_default_to_auto_precision(tmp_path, monkeypatch, native_bf16):
    """`i2i serve` and `i2i app` run `--precision auto` by default, as translate does: bf16 on a CPU with native
    bf16, fp32 elsewhere; the metadata says what runs, not "auto"."""
    from i2i_cli.engine import device as device_module
    from i2i_cli.serve import ServeOptions, Translators, load_facts

    monkeypatch.setattr(device_module, "cpu_has_native_bf16", lambda: native_bf16)
    run = make_run(tmp_path / "run", "pix2pix")
    expected = "bf16" if native_bf16 else "fp32"
    _, facts = load_facts(str(run), ServeOptions(device="cpu"))
    assert facts.precision == expected
    assert Translators(str(run), "cpu").default.precision_ran == expected
    from i2i_cli.commands.app import app_command
    from i2i_cli.commands.serve import serve

    for command in (serve, app_command):  # the commands' own defaults
        assert inspect.signature(command).parameters["precision"].default == "auto"


def test_styles_triton_and_onnx_through_the_batched_translators(tmp_path):
    """The worker's batching (in-process): StarGAN v2 requests with a domain and seed equal `i2i translate`'s
    outputs; an unknown domain is refused. `i2i export --format triton` writes the repository layout, its
    model.onnx runs batches in ONNX Runtime and serves as its run does."""
    from i2i_cli.serve import ServeOptions, Translators, load_facts
    from i2i_cli.serve.service import RequestError, build_request

    run = make_run(tmp_path / "sg", "starganv2")
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(3)]
    (tmp_path / "in").mkdir()
    for i, image in enumerate(images):
        Image.fromarray(image).save(tmp_path / "in" / f"{i}.png")
    path, facts = load_facts(str(run), ServeOptions())
    assert facts.domains == ["cat", "dog", "wild"]
    with pytest.raises(RequestError, match="domain lion: unknown; this model has cat, dog, wild"):
        build_request(_png(images[0]), {"domain": "lion"}, "", None, facts, 10**6)
    requests = [build_request(_png(im), {"domain": "dog", "seed": "3"}, "", None, facts, 10**6) for im in images]
    results = Translators(path, "cpu", "fp32").translate(requests)
    assert [r.batch for r in results] == [3, 3, 3]
    result = runner.invoke(app, ["translate", str(tmp_path / "in"), str(tmp_path / "cli"), "-c", str(run),
                                 "--domain", "dog", "--seed", "3", "--device", "cpu", "--precision", "fp32"])
    assert result.exit_code == 0, result.output
    cli = sorted((tmp_path / "cli").rglob("*.png"))
    assert len(cli) == 3
    for r, file in zip(results, cli):
        assert np.array_equal(r.image, load_image(file))

    p2p = make_run(tmp_path / "p2p", "pix2pix")
    result = runner.invoke(app, ["export", "-c", str(p2p), "--format", "triton", "--out", str(tmp_path / "repo"),
                                 "--name", "p2p", "--max-batch", "4"])
    assert result.exit_code == 0, result.output
    config = (tmp_path / "repo" / "p2p" / "config.pbtxt").read_text()
    for line in ('name: "p2p"', 'platform: "onnxruntime_onnx"', "max_batch_size: 4", "dynamic_batching {",
                 'name: "image" data_type: TYPE_FP32 dims: [ 3, -1, -1 ]', 'key: "size_multiple"'):
        assert line in config, config
    model = tmp_path / "repo" / "p2p" / "1" / "model.onnx"
    import onnxruntime as ort

    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    x = np.stack([im.transpose(2, 0, 1) for im in images[:2]]).astype(np.float32) / 127.5 - 1
    assert session.run(None, {"image": x})[0].shape == (2, 3, 32, 32)  # a batch, as Triton sends it
    path, facts = load_facts(str(model), ServeOptions())  # the same file served by i2i serve
    assert facts.kind == "onnx" and facts.method == "pix2pix"
    onnx_out = Translators(path, "cpu").translate([build_request(_png(images[0]), {}, "", None, facts, 10**6)])
    torch_out = Translators(str(p2p), "cpu", "fp32").translate([build_request(_png(images[0]), {}, "", None, facts, 10**6)])
    assert np.abs(onnx_out[0].image.astype(int) - torch_out[0].image.astype(int)).max() <= 1
    result = runner.invoke(app, ["export", "-c", str(run), "--format", "triton", "--out", str(tmp_path / "r2")])
    assert result.exit_code == 2 and "three graphs" in result.output


def test_hub_push_space_writes_a_space_running_the_page(tmp_path):
    run = make_run(tmp_path / "run", "pix2pix")
    folder = tmp_path / "model"
    result = runner.invoke(app, ["hub", "push", str(run), "me/facades", "--to-folder", str(folder),
                                 "--space", "me/facades-demo"])
    assert result.exit_code == 0, result.output
    space = tmp_path / "model-space"
    assert sorted(p.name for p in space.iterdir()) == ["README.md", "app.py", "requirements.txt"]
    readme = (space / "README.md").read_text()
    front = readme.split("---")[1]
    for line in ("sdk: gradio", "app_file: app.py", "sdk_version: ", "  - me/facades", "  - pix2pix"):
        assert line in front, front
    code = (space / "app.py").read_text()
    compile(code, "app.py", "exec")
    assert 'MODEL = "hf://me/facades"' in code and "build_app(PageModel(MODEL" in code
    assert "i2i[app,hub]" in (space / "requirements.txt").read_text()
    assert (folder / "config.json").is_file()  # the model's layout, which the Space loads from the Hub
    result = runner.invoke(app, ["hub", "push", str(run), "me/facades", "--to-folder", str(tmp_path / "m2"),
                                 "--space", "not-a-repo"])
    assert result.exit_code == 2 and "--space not-a-repo: a Hub repo is OWNER/NAME" in result.output
    assert not (tmp_path / "m2").exists()


def test_push_with_space_to_a_loopback_hub_and_serve_its_hf_model(tmp_path):
    """`i2i hub push --space` makes the Space in one commit; `i2i serve hf://...` reads the pushed model (the
    worker then loads the same resolved files)."""
    from tests.test_hub import ROOT, TOKEN, FakeHub, _i2i, serve_hub

    run = make_run(tmp_path / "run", "pix2pix")
    hub = FakeHub()
    with serve_hub(hub) as endpoint:
        env = {"HF_ENDPOINT": endpoint, "HF_HUB_CACHE": str(tmp_path / "cache"), "HF_HOME": str(tmp_path / "home"),
               "HF_HUB_DISABLE_XET": "1", "HF_TOKEN": TOKEN}
        pushed = _i2i(["hub", "push", str(run), "me/facades", "--space", "me/facades-demo"], env)
        assert pushed.returncode == 0, pushed.stderr + pushed.stdout
        assert "spaces/me/facades-demo" in pushed.stdout
        space = hub.files("me/facades-demo", "main")[1]
        assert sorted(space) == ["README.md", "app.py", "requirements.txt"]
        assert b'MODEL = "hf://me/facades"' in space["app.py"] and b"sdk: gradio" in space["README.md"]
        code = ("import json; from i2i_cli.serve import ServeOptions, load_facts; "
                "path, facts = load_facts('hf://me/facades', ServeOptions()); print(json.dumps([path, facts.method]))")
        base = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
        done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=240,
                              env={**base, "PYTHONPATH": str(ROOT), **env})
        assert done.returncode == 0, done.stderr
        path, method = json.loads(done.stdout.splitlines()[-1])
        assert method == "pix2pix" and Path(path).is_relative_to(tmp_path / "cache")
