"""torchrun with the gloo backend on the CPU, and mixed precision on the CPU."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch

from i2i_cli.engine.checkpoint import load_for_inference
from i2i_cli.engine.trainer import TrainOptions, train
from tests.conftest import tiny_config

OPTIONS = ["--model", "pix2pix", "--size", "32", "--set", "ngf=8", "--set", "ndf=8", "--set", "norm=instance",
           "--set", "dropout=false", "--steps", "3", "--batch-size", "4", "--device", "cpu", "--log-every", "1",
           "--save-every", "1"]  # a checkpoint at each step: the resume below starts from step 2's


def _losses(run) -> list[dict[str, float]]:
    return [json.loads(line)["losses"] for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_two_gloo_processes_equal_one_process_with_the_same_global_batch(datasets, tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    data = ["--data", str(datasets["aligned"])]
    ddp = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "i2i_cli",
                          "train", *OPTIONS, *data, "--out", str(tmp_path / "ddp")], env=env, capture_output=True,
                         text=True, timeout=300)
    assert ddp.returncode == 0, ddp.stderr[-2000:]
    single = subprocess.run([sys.executable, "-m", "i2i_cli", "train", *OPTIONS, *data, "--out", str(tmp_path / "one")],
                            env=env, capture_output=True, text=True, timeout=300)
    assert single.returncode == 0, single.stderr[-2000:]

    # rank 0 alone writes: one log line per step, one set of checkpoints
    assert [json.loads(line)["step"] for line in (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3]
    for a, b in zip(_losses(tmp_path / "ddp"), _losses(tmp_path / "one")):
        for key in a:
            assert abs(a[key] - b[key]) <= 1e-4 * max(1.0, abs(b[key])), (key, a[key], b[key])
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    out_ddp = load_for_inference(tmp_path / "ddp").method.translate(x)
    out_one = load_for_inference(tmp_path / "one").method.translate(x)
    assert torch.allclose(out_ddp, out_one, atol=1e-5)

    # the 2-process run, interrupted after step 2, resumes in one process and ends where the 1-process run did
    shutil.copytree(tmp_path / "ddp", tmp_path / "moved")
    shutil.rmtree(tmp_path / "moved" / "checkpoints" / "step_00000003")
    (tmp_path / "moved" / "latest.json").write_text(json.dumps({"step": 2, "dir": "checkpoints/step_00000002"}))
    resumed = subprocess.run([sys.executable, "-m", "i2i_cli", "train", *OPTIONS, *data, "--out",
                              str(tmp_path / "moved"), "--resume"], env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    last_moved, last_one = _losses(tmp_path / "moved")[-1], _losses(tmp_path / "one")[-1]
    assert len(_losses(tmp_path / "moved")) == 3
    for key in last_one:
        assert abs(last_moved[key] - last_one[key]) <= 1e-4 * max(1.0, abs(last_one[key])), key


def test_bf16_autocast_on_the_cpu_trains_a_step(datasets, tmp_path):
    result = train("pix2pix", tiny_config("pix2pix"), TrainOptions(data=datasets["aligned"], out=tmp_path / "r",
                                                                   steps=2, device="cpu", precision="bf16"))
    assert result.steps == 2 and all(torch.isfinite(torch.tensor(v)) for v in result.final_losses.values())


def test_sync_bn_converts_every_batchnorm_keeping_the_checkpoint_layout():
    from torch import nn

    from i2i_cli.engine.trainer import sync_batchnorm
    from i2i_cli.models import registry
    from tests.conftest import tiny_config

    method = registry.method_class("segmenter")(tiny_config("segmenter"))
    before = {k: v.clone() for k, v in method.state_dict().items()}
    assert "CUDA only" in sync_batchnorm(method, torch.device("cpu"), 2)
    assert "one process" in sync_batchnorm(method, torch.device("cuda"), 1)
    assert not any(isinstance(m, nn.SyncBatchNorm) for m in method.modules())
    assert sync_batchnorm(method, torch.device("cuda"), 2) == ""  # converting needs no GPU; running it does
    kinds = {type(m) for m in method.modules()}
    assert nn.SyncBatchNorm in kinds and nn.BatchNorm2d not in kinds
    after = method.state_dict()
    assert list(after) == list(before) and all(torch.equal(after[k], before[k]) for k in before)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_nodes_of_one_process_each_equal_one_process(datasets, tmp_path):
    """`torchrun --nnodes 2 --nproc-per-node 1`: two node ranks on this machine, rendezvous on loopback (c10d),
    gloo; both write to one --out as nodes on a shared file system do (rank 0 alone writes)."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    data = ["--data", str(datasets["aligned"])]
    endpoint = f"127.0.0.1:{_free_port()}"
    nodes = [subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node",
                               "1", "--node-rank", str(rank), "--rdzv-backend", "c10d", "--rdzv-endpoint", endpoint,
                               "--rdzv-id", "i2i-test", "-m", "i2i_cli", "train", *OPTIONS, *data, "--out",
                               str(tmp_path / "nodes")], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for rank in (0, 1)]
    outputs = [node.communicate(timeout=600) for node in nodes]
    assert all(node.returncode == 0 for node in nodes), [err[-2000:] for _, err in outputs]
    single = subprocess.run([sys.executable, "-m", "i2i_cli", "train", *OPTIONS, *data, "--out", str(tmp_path / "one")],
                            env=env, capture_output=True, text=True, timeout=300)
    assert single.returncode == 0, single.stderr[-2000:]
    assert [json.loads(line)["step"] for line in (tmp_path / "nodes" / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3]
    for a, b in zip(_losses(tmp_path / "nodes"), _losses(tmp_path / "one"), strict=True):
        for key in a:
            assert abs(a[key] - b[key]) <= 1e-4 * max(1.0, abs(b[key])), (key, a[key], b[key])
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    out_nodes = load_for_inference(tmp_path / "nodes").method.translate(x)
    assert torch.allclose(out_nodes, load_for_inference(tmp_path / "one").method.translate(x), atol=1e-5)


def test_rank0_evaluates_while_the_other_rank_waits(datasets, tmp_path, tmp_path_factory):
    """--eval-every under torchrun (gloo): rank 0 scores the checkpoint, the other rank waits at the barrier,
    both finish; one evaluation row per evaluated step, the best kept."""
    import torchvision

    from tests.test_evaluation import _stand_in_dir

    weights = _stand_in_dir(tmp_path_factory, 64)
    torch.manual_seed(0)
    alex = torchvision.models.alexnet(weights=None).features.state_dict()
    torch.save({f"features.{k}": v for k, v in alex.items()}, weights / "alexnet-owt-7be5be79.pth")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    run = tmp_path / "ddp"
    ddp = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "i2i_cli",
                          "train", *OPTIONS, "--data", str(datasets["aligned"]), "--out", str(run), "--eval-every",
                          "2", "--keep-best", "fid", "--weights-dir", str(weights), "--log-to", "none"],
                         env=env, capture_output=True, text=True, timeout=300)
    assert ddp.returncode == 0, ddp.stderr[-2000:]
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "eval" in r] == [2, 3]  # every 2 steps and the last
    assert json.loads((run / "best.json").read_text())["key"] == "fid"
