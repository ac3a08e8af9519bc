"""`i2i train --log-to`: the same scalars, the sample grids and the resolved config in each tracker (the real
mlflow and wandb libraries: MLflow's local SQLite store, wandb's offline mode; no server)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from i2i_cli.engine.report import read_metrics
from i2i_cli.engine.trackers import parse_log_to
from i2i_cli.engine.trainer import TrainOptions, train
from i2i_cli.errors import ConfigError
from i2i_cli.main import app
from tests.conftest import tiny_config


def _train(datasets, out, log_to, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    options = TrainOptions(data=datasets["aligned"], out=out, steps=4, log_every=2, sample_every=2, save_every=4,
                           device="cpu", log_to=log_to)
    return train("pix2pix", tiny_config("pix2pix"), options)


def test_mlflow_gets_the_scalars_samples_and_config(datasets, tmp_path, monkeypatch):
    mlflow = pytest.importorskip("mlflow", reason="the [trackers] extra (mlflow) is not installed")
    run_dir = tmp_path / "run"
    _train(datasets, run_dir, ("tensorboard", "mlflow"), monkeypatch)
    mlflow.set_tracking_uri(f"sqlite:///{(run_dir / 'mlflow.db').resolve()}")
    client = mlflow.tracking.MlflowClient()
    (run,) = client.search_runs([client.get_experiment_by_name("i2i").experiment_id])
    assert run.info.run_name == "run" and run.data.params["method"] == "pix2pix"
    assert run.data.params["config.ngf"] == "8"
    logged = {m.step: m.value for m in client.get_metric_history(run.info.run_id, "loss.G_GAN")}
    expected = {row["step"]: row["losses"]["G_GAN"] for row in read_metrics(run_dir)}
    assert logged.keys() == expected.keys() == {2, 4}
    assert all(abs(logged[s] - expected[s]) < 1e-6 for s in expected)
    artifacts = [a.path for a in client.list_artifacts(run.info.run_id, "samples")]
    assert artifacts == ["samples/step_00000002.png", "samples/step_00000004.png"]
    config = mlflow.artifacts.load_dict(f"runs:/{run.info.run_id}/config.json")
    assert config["method"] == "pix2pix" and config["config"]["ngf"] == 8
    assert list((run_dir / "tb").iterdir())  # TensorBoard still logs alongside


def _wandb_records(path):
    """The records of an offline .wandb file: a 7-byte W&B header, then LevelDB-log framing (32 KiB blocks,
    7-byte chunk headers: crc32c, little-endian length, type FULL/FIRST/MIDDLE/LAST) around protobuf Records.
    (wandb ships no Python reader for it since its core moved to Go.)"""
    from wandb.proto import wandb_internal_pb2

    data, block = path.read_bytes(), 32768
    assert data[:4] == b":W&B"
    position, pending, records = 7, b"", []
    while position + 7 <= len(data):
        if block - position % block < 7:  # too little room left for a chunk header: block padding
            position += block - position % block
            continue
        length, kind = int.from_bytes(data[position + 4 : position + 6], "little"), data[position + 6]
        chunk, position = data[position + 7 : position + 7 + length], position + 7 + length
        if kind == 0 and length == 0:
            continue
        pending = chunk if kind in (1, 2) else pending + chunk
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
    return records


def test_wandb_offline_gets_the_scalars_samples_and_config(datasets, tmp_path, monkeypatch):
    pytest.importorskip("wandb", reason="the [trackers] extra (wandb) is not installed")
    run_dir = tmp_path / "run"
    _train(datasets, run_dir, ("wandb",), monkeypatch)
    (offline,) = (run_dir / "wandb").glob("offline-run-*")
    records = _wandb_records(next(offline.glob("run-*.wandb")))
    history: dict[int, dict[str, object]] = {}
    config: dict[str, object] = {}
    for record in records:
        kind = record.WhichOneof("record_type")
        if kind == "history":
            items = {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in record.history.item}
            history.setdefault(int(items.get("_step", record.history.step.num)), {}).update(items)
        elif kind in ("run", "config"):
            updates = record.run.config.update if kind == "run" else record.config.update
            config.update({item.key: json.loads(item.value_json) for item in updates})
    expected = {row["step"]: row["losses"]["G_GAN"] for row in read_metrics(run_dir)}
    logged = {step: row["loss/G_GAN"] for step, row in history.items() if "loss/G_GAN" in row}
    assert logged.keys() == expected.keys() == {2, 4}
    assert all(abs(logged[s] - expected[s]) < 1e-6 for s in expected)
    unwrap = {k: v["value"] if isinstance(v, dict) and set(v) == {"value"} else v for k, v in config.items()}
    assert unwrap["method"] == "pix2pix" and unwrap["config"]["ngf"] == 8
    assert len(list((offline / "files" / "media" / "images").glob("samples_*.png"))) == 2
    assert not (run_dir / "tb").exists()  # only the trackers asked for


def test_log_to_names_are_checked_before_training(datasets, tmp_path):
    assert parse_log_to("tensorboard, wandb,tensorboard") == ["tensorboard", "wandb"]
    assert parse_log_to("none") == []
    with pytest.raises(ConfigError, match="choose from tensorboard, wandb, mlflow"):
        parse_log_to("neptune")
    result = CliRunner().invoke(app, ["train", "--model", "pix2pix", "--data", str(datasets["aligned"]), "--out",
                                      str(tmp_path / "r"), "--log-to", "comet"])
    assert result.exit_code == 2 and "--log-to comet" in result.output and not (tmp_path / "r").exists()
