"""`i2i hub push` and hf:// checkpoints against a loopback stand-in for the Hub (HF_ENDPOINT): huggingface_hub's
real client code makes the requests; the server implements the few endpoints it calls. Offline resolution
from the cache it filled; the model card's content."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from i2i_cli.data.images import load_image
from i2i_cli.errors import CheckpointError
from i2i_cli.main import app
from tests.run_factory import make_run

pytest.importorskip("huggingface_hub", reason="the [hub] extra (huggingface_hub) is not installed")

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "hf_loopback_token"
runner = CliRunner()


class FakeHub:
    """Repos in memory: {repo: {"private": bool, "branches": {name: sha}, "commits": {sha: {path: bytes}}}}."""

    def __init__(self) -> None:
        self.repos: dict[str, dict[str, Any]] = {}
        self.failing: set[str] = set()  # repos whose commit endpoint answers 500 (an upload cut off)
        self.requests: list[str] = []

    def authorised(self, headers: Any) -> bool:
        return headers.get("Authorization") == f"Bearer {TOKEN}"

    def files(self, repo: str, revision: str) -> tuple[str, dict[str, bytes]] | None:
        entry = self.repos[repo]
        sha = entry["branches"].get(revision, revision)
        return (sha, entry["commits"][sha]) if sha in entry["commits"] else None


def _handler(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _send(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
            data = body if isinstance(body, bytes) else json.dumps(body if body is not None else {}).encode()
            self.send_response(status)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            if not isinstance(body, bytes):
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def _body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _repo(self, repo: str) -> dict[str, Any] | None:
            entry = hub.repos.get(repo)
            if entry is None or (entry["private"] and not hub.authorised(self.headers)):
                self._send(401, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"})
                return None
            return entry

        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            path = unquote(urlparse(self.path).path)
            hub.requests.append(f"POST {path}")
            body = self._body()
            if path == "/api/validate-yaml":
                return self._send(200, {"errors": [], "warnings": []})
            if not hub.authorised(self.headers):
                return self._send(401, {"error": "Invalid credentials in Authorization header"})
            if path == "/api/repos/create":
                obj = json.loads(body)
                repo = f"{obj['organization']}/{obj['name']}"
                if repo in hub.repos:
                    return self._send(409, {"error": "You already created this model repo"})
                hub.repos[repo] = {"private": obj.get("visibility") == "private" or obj.get("private") is True, "branches": {"main": "0" * 40},
                                   "commits": {"0" * 40: {}}}
                return self._send(200, {"url": f"http://{self.headers['Host']}/{repo}", "name": repo})
            parts = path.split("/")  # /api/models/OWNER/NAME/<action>/<revision>
            repo, action, revision = f"{parts[3]}/{parts[4]}", parts[5], "/".join(parts[6:])
            entry = self._repo(repo)
            if entry is None:
                return None
            if action == "branch":
                if revision in entry["branches"]:
                    return self._send(409, {"error": "Reference already exists"})
                entry["branches"][revision] = entry["branches"]["main"]
                return self._send(200, {})
            if action == "preupload":
                files = json.loads(body)["files"]
                return self._send(200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                                                  for f in files]})
            if action == "commit":
                return self._commit(entry, repo, revision, body)
            return self._send(404, {"error": f"no endpoint {path}"})

        def _commit(self, entry: dict[str, Any], repo: str, revision: str, body: bytes) -> None:
            if repo in hub.failing:
                return self._send(500, {"error": "Internal Error"})
            if revision not in entry["branches"]:
                return self._send(404, {"error": "Invalid rev id"}, {"X-Error-Code": "RevisionNotFound"})
            files = dict(entry["commits"][entry["branches"][revision]])
            for line in body.splitlines():
                item = json.loads(line)
                if item["key"] == "file":
                    files[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
            sha = hashlib.sha1(json.dumps(sorted((k, hashlib.sha1(v).hexdigest()) for k, v in files.items())).encode()).hexdigest()
            entry["commits"][sha] = files
            entry["branches"][revision] = sha
            return self._send(200, {"commitUrl": f"http://{self.headers['Host']}/{repo}/commit/{sha}",
                                    "commitOid": sha, "success": True})

        def do_GET(self) -> None:  # noqa: N802
            self._get()

        def do_HEAD(self) -> None:  # noqa: N802
            self._get()

        def _get(self) -> None:
            path = unquote(urlparse(self.path).path)
            hub.requests.append(f"{self.command} {path}")
            parts = path.split("/") + ["", "", ""]
            if path.startswith("/api/models/"):  # repo_info: [/revision/REV]; list_repo_tree: /tree/REV
                repo, action, revision = f"{parts[3]}/{parts[4]}", parts[5] or "revision", parts[6] or "main"
            elif len(parts) > 7 and parts[3] == "resolve":  # /OWNER/NAME/resolve/REV/FILE
                repo, action, revision = f"{parts[1]}/{parts[2]}", parts[3], parts[4]
            else:  # e.g. /api/agent-harnesses, which the client may ask for and does without
                return self._send(404, {"error": "not here"})
            entry = self._repo(repo)
            if entry is None:
                return None
            found = hub.files(repo, revision)
            if found is None:
                return self._send(404, {"error": "Invalid rev id"}, {"X-Error-Code": "RevisionNotFound"})
            sha, files = found
            if action == "revision":
                return self._send(200, {"id": repo, "modelId": repo, "sha": sha, "private": entry["private"],
                                        "siblings": [{"rfilename": name} for name in sorted(files)]})
            if action == "tree":
                return self._send(200, [{"type": "file", "path": name, "size": len(data),
                                         "oid": hashlib.sha1(data).hexdigest()} for name, data in sorted(files.items())])
            name = "/".join(p for p in parts[5:] if p)
            if name not in files:
                return self._send(404, {"error": "Entry not found"}, {"X-Error-Code": "EntryNotFound"})
            data = files[name]
            return self._send(200, data, {"X-Repo-Commit": sha, "ETag": f'"{hashlib.sha1(data).hexdigest()}"'})

    return Handler


@contextmanager
def serve_hub(hub: FakeHub) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(hub))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _i2i(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The CLI in a fresh process: huggingface_hub reads HF_ENDPOINT / HF_HUB_OFFLINE when it is imported."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    return subprocess.run([sys.executable, "-m", "i2i_cli", *args], cwd=ROOT, capture_output=True, text=True,
                          env={**base, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", **env}, timeout=240)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    folder = make_run(tmp_path_factory.mktemp("hub_runs") / "facades_p2p", "pix2pix",
                      data={"root": "/data/facades", "layout": "aligned", "counts": {"train": 400, "test": 106}})
    (folder / "samples").mkdir()
    Image.new("RGB", (64, 32), (200, 10, 10)).save(folder / "samples" / "step_00000001.png")
    (folder / "metrics.jsonl").write_text("".join(json.dumps({"step": s, "time": t}) + "\n"
                                                  for s, t in ((1, 5.0), (2, 9.0), (1, 3.0))))  # resumed once
    (folder / "eval").mkdir()
    (folder / "eval" / "eval.json").write_text(json.dumps({"fid": 123.4, "lpips": 0.321, "protocol": {
        "mode": "clean", "n_real": 106, "n_fake": 106, "image_size": 256}}))
    return folder


@pytest.fixture()
def images(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for name, (h, w) in {"a": (32, 48), "b": (36, 36)}.items():
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(folder / f"{name}.png")
    return folder


def test_model_card_and_folder_layout(run, tmp_path):
    folder = tmp_path / "hub"
    result = runner.invoke(app, ["hub", "push", str(run), "me/facades-pix2pix", "--to-folder", str(folder)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "eval.json", "model.safetensors",
                                                        "sample.png"]
    card = (folder / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: i2i\n") and '- "pix2pix"' in card
    for expected in ("Isola, Zhu, Zhou, Efros", "https://github.com/junyanz/pytorch-CycleGAN-and-pix2pix",
                     "licence: BSD", "name: `facades`", "layout: aligned", "train 400, test 106", "steps: 1",
                     "time trained: 12 s", "| fid | 123.4 |", '"mode": "clean"', "![training samples](sample.png)",
                     "i2i translate --checkpoint hf://me/facades-pix2pix", 'i2i_cli.load("hf://me/facades-pix2pix"',
                     '"ngf": 8'):
        assert expected in card, expected
    from safetensors import safe_open

    with safe_open(str(folder / "model.safetensors"), "pt") as weights:
        keys = list(weights.keys())
    assert keys and all(k.startswith("G.") for k in keys)  # the inference network only: no discriminator
    config = json.loads((folder / "config.json").read_text())
    assert config["method"] == "pix2pix" and config["i2i_checkpoint"]["step"] == 1
    again = runner.invoke(app, ["hub", "push", str(run), "me/x", "--to-folder", str(folder)])
    assert again.exit_code == 2 and "not empty" in again.output  # nothing a user had is replaced


def test_hub_folder_and_run_translate_alike(run, images, tmp_path):
    folder = tmp_path / "hub"
    assert runner.invoke(app, ["hub", "push", str(run), "me/f", "--to-folder", str(folder)]).exit_code == 0
    for name, checkpoint in (("run", run), ("hub", folder)):
        result = runner.invoke(app, ["translate", "-c", str(checkpoint), str(images), str(tmp_path / name), "--device", "cpu"])
        assert result.exit_code == 0, result.output
    for file in images.iterdir():
        assert np.array_equal(load_image(tmp_path / "run" / file.name), load_image(tmp_path / "hub" / file.name))


def test_push_refuses_a_run_without_weights(tmp_path):
    from i2i_cli.engine.checkpoint import RunConfig, write_run_config

    empty = tmp_path / "empty"
    empty.mkdir()
    write_run_config(empty, RunConfig("pix2pix", {}, ["A", "B"]))
    result = runner.invoke(app, ["hub", "push", str(empty), "me/x", "--to-folder", str(tmp_path / "out")])
    assert result.exit_code == 2 and "no weights yet" in result.output and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_parse_hub_reference():
    from i2i_cli.engine.checkpoint import parse_hub_reference

    assert parse_hub_reference("hf://me/model") == ("me/model", None)
    assert parse_hub_reference(Path("hf://me/model@v2")) == ("me/model", "v2")  # a typer Path makes it hf:/
    assert parse_hub_reference("runs/x") is None
    with pytest.raises(CheckpointError, match="hf://OWNER/NAME"):
        parse_hub_reference("hf://justone")


def test_push_then_pull_through_the_hub_client_and_offline_from_its_cache(run, images, tmp_path):
    hub, cache = FakeHub(), tmp_path / "hf_cache"
    local = tmp_path / "local"
    assert runner.invoke(app, ["translate", "-c", str(run), str(images), str(local), "--device", "cpu"]).exit_code == 0
    with serve_hub(hub) as endpoint:
        env = {"HF_ENDPOINT": endpoint, "HF_HUB_CACHE": str(cache), "HF_HOME": str(tmp_path / "hf_home"),
               "HF_HUB_DISABLE_XET": "1"}
        denied = _i2i(["hub", "push", str(run), "me/facades"], env)
        assert denied.returncode == 2 and "me/facades" in denied.stderr + denied.stdout
        assert "hf auth login" in denied.stderr + denied.stdout and "me/facades" not in hub.repos
        pushed = _i2i(["hub", "push", str(run), "me/facades", "--private"], {**env, "HF_TOKEN": TOKEN})
        assert pushed.returncode == 0, pushed.stderr + pushed.stdout
        commits = [r for r in hub.requests if r.startswith("POST /api/models/me/facades/commit/")]
        assert len(commits) == 1  # every file in one commit
        main = hub.files("me/facades", "main")[1]
        assert sorted(main) == ["README.md", "config.json", "eval.json", "model.safetensors", "sample.png"]
        assert hub.repos["me/facades"]["private"]
        hub.failing.add("me/cut-off")
        failed = _i2i(["hub", "push", str(run), "me/cut-off"], {**env, "HF_TOKEN": TOKEN})
        assert failed.returncode == 2 and "me/cut-off" in failed.stderr + failed.stdout
        assert hub.files("me/cut-off", "main")[1] == {}  # the failed upload left no finished revision
        hidden = _i2i(["translate", "-c", "hf://me/facades", str(images), str(tmp_path / "x"), "--device", "cpu"], env)
        assert hidden.returncode == 2 and "hf://me/facades" in hidden.stderr and "HF_TOKEN" in hidden.stderr
        pulled = _i2i(["translate", "-c", "hf://me/facades", str(images), str(tmp_path / "pulled"), "--device", "cpu"],
                      {**env, "HF_TOKEN": TOKEN})
        assert pulled.returncode == 0, pulled.stderr + pulled.stdout
    for file in images.iterdir():
        assert np.array_equal(load_image(tmp_path / "pulled" / file.name), load_image(local / file.name))
    offline = {**env, "HF_HUB_OFFLINE": "1"}  # the server is gone: only the cache answers
    cached = _i2i(["translate", "-c", "hf://me/facades", str(images), str(tmp_path / "offline"), "--device", "cpu"],
                  offline)
    assert cached.returncode == 0, cached.stderr + cached.stdout
    assert np.array_equal(load_image(tmp_path / "offline" / "a.png"), load_image(local / "a.png"))
    missing = _i2i(["translate", "-c", "hf://me/never-cached", str(images), str(tmp_path / "y")], offline)
    assert missing.returncode == 2 and len(missing.stderr.strip().splitlines()) == 1
    assert "hf://me/never-cached" in missing.stderr and "offline" in missing.stderr
