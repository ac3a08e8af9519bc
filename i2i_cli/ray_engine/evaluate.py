"""`i2i eval --engine ray`: Inception features extracted by a Ray actor pool with the same network and
preprocessing as the one-process run, in the same batches; FID's mean and covariance merged from float64
partial sums as the batches stream back, KID on the gathered features. The other metrics run as they do
locally, and the protocol records the engine and its actors."""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from i2i_cli.data.images import list_images
from i2i_cli.errors import BadImageError, DataError, I2IError
from i2i_cli.evaluation.evaluate import EvalOptions, evaluate_folders
from i2i_cli.evaluation.fid_kid import (
    STARGAN_V2_SIZE,
    batch_features,
    canonical_mode,
    inception,
    inception_input,
)
from i2i_cli.evaluation.metrics import MetricContext
from i2i_cli.evaluation.report import EvalResult
from i2i_cli.ray_engine.cluster import (
    ClusterInfo,
    RayOptions,
    actor_count,
    connect,
    disconnect,
    pool_arguments,
    require_ray,
)

MOMENTS_PROTOCOL = ("count, mean and centred sum of outer products (float64) of each batch, merged pairwise by "
                    "Chan et al.'s update; covariance = sum / (n - 1), as np.cov")


def evaluate_on_ray(real: str | os.PathLike[str], fake: str | os.PathLike[str], options: EvalOptions,
                    ray_options: RayOptions | None = None, progress: Any = None) -> EvalResult:
    """evaluate_folders with FID / KID's features extracted on a Ray cluster (or a local Ray)."""
    require_ray()
    ray_opts = ray_options or RayOptions()
    info = connect(ray_opts)
    try:
        actors = actor_count(ray_opts, info)
        source = RayFeatures(actors, ray_opts, info)
        result = evaluate_folders(real, fake, options, progress, shared={"feature_source": source})
    finally:
        disconnect(info)
    result.protocol.update({"engine": {"name": "ray", "actors": actors, "cluster": info.address,
                                       "fid_moments": MOMENTS_PROTOCOL}})
    return result


class Moments:
    """Running (count, mean, centred sum of outer products) in float64."""

    def __init__(self, dim: int) -> None:
        self.n, self.mean, self.m2 = 0, np.zeros(dim), np.zeros((dim, dim))

    def add(self, batch: np.ndarray) -> None:
        n_b = batch.shape[0]
        mean_b = batch.mean(axis=0)
        centred = batch - mean_b
        m2_b = centred.T @ centred
        n = self.n + n_b
        delta = mean_b - self.mean
        self.mean = self.mean + delta * (n_b / n)
        self.m2 = self.m2 + m2_b + np.outer(delta, delta) * (self.n * n_b / n)
        self.n = n

    def result(self) -> tuple[int, np.ndarray, np.ndarray]:
        return self.n, self.mean, self.m2 / max(1, self.n - 1)


class RayFeatures:
    """fid_kid's feature_source: both folders through one actor pool (the network loads once per actor), one
    Ray Data row per batch of files (the one-process run's batches); features back in i2i's listing order, each
    side's moments left in ctx.shared["moments"]."""

    def __init__(self, actors: int, ray_options: RayOptions, info: ClusterInfo) -> None:
        self.actors, self.ray_options, self.info = actors, ray_options, info
        self.done: dict[str, tuple[np.ndarray, list[tuple[str, str]]]] = {}

    def __call__(self, name: str, folder: Path, ctx: MetricContext) -> tuple[np.ndarray, list[tuple[str, str]]]:
        if not self.done:
            self.done = self._extract({"real": ctx.real, "fake": ctx.fake}, ctx)
        return self.done[name]

    def _extract(self, folders: dict[str, Path], ctx: MetricContext
                 ) -> dict[str, tuple[np.ndarray, list[tuple[str, str]]]]:
        import ray

        options, size = ctx.options, ctx.options.batch_size
        files = {name: [str(p) for p in list_images(folder)] for name, folder in folders.items()}
        rows = [{"side": name, "start": i, "paths": "\n".join(paths[i: i + size])}
                for name, paths in files.items() for i in range(0, len(paths), size)]
        dataset = ray.data.from_items(rows, override_num_blocks=min(len(rows), 4 * self.actors)).map_batches(
            FeatureActor, batch_size=1, batch_format="numpy",
            fn_constructor_kwargs={"mode": canonical_mode(options.mode), "weights_dir": options.weights_dir,
                                   "image_size": options.image_size or STARGAN_V2_SIZE,
                                   "threads": max(1, int(self.ray_options.cpus_per_actor))},
            **pool_arguments(self.actors, self.ray_options, self.info))
        found: dict[str, dict[int, np.ndarray]] = {name: {} for name in folders}
        bad: dict[str, list[tuple[str, str]]] = {name: [] for name in folders}
        done, total = 0, sum(len(paths) for paths in files.values())
        report = ctx.report(f"features (Ray, {self.actors} actor(s))")
        try:
            for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
                for side, start, count, data, problems in zip(batch["side"], batch["start"], batch["count"],
                                                              batch["features"], batch["bad"]):
                    listed = json.loads(str(problems))
                    if count:
                        found[str(side)][int(start)] = np.frombuffer(data, dtype=np.float64).reshape(int(count), -1)
                    bad[str(side)] += [(str(path), str(reason)) for path, reason in listed]
                    done += int(count) + len(listed)
                if report:
                    report(done, total)
        except ray.exceptions.RayError as exc:
            raise I2IError(f"the Ray job stopped: {str(exc).strip().splitlines()[-1]}") from exc
        return {name: self._side(name, folders[name], found[name], bad[name], files[name], ctx) for name in folders}

    @staticmethod
    def _side(name: str, folder: Path, found: dict[int, np.ndarray], bad: list[tuple[str, str]], listed: list[str],
              ctx: MetricContext) -> tuple[np.ndarray, list[tuple[str, str]]]:
        if not found:
            raise DataError(f"{folder}: none of its {len(listed)} images could be read")
        ordered = [found[start] for start in sorted(found)]
        moments = Moments(ordered[0].shape[1])
        for block in ordered:  # in the listing's order: the same sums whatever order the actors finished in
            moments.add(block)
        ctx.shared.setdefault("moments", {})[name] = moments.result()
        position = {path: i for i, path in enumerate(listed)}
        return np.concatenate(ordered), sorted(bad, key=lambda item: position.get(item[0], -1))


class FeatureActor:
    """One Ray actor: the feature network loaded once; each row is one batch of files."""

    def __init__(self, mode: str, weights_dir: str | None, image_size: int, threads: int) -> None:
        import torch

        torch.set_num_threads(threads)
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.model, _ = inception(mode, self.device, weights_dir)
        self.prepare = inception_input(mode, image_size)
        self.pool = ThreadPoolExecutor(max_workers=max(2, threads))

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {"side": [], "start": [], "count": [], "features": [], "bad": []}
        for side, start, paths in zip(batch["side"], batch["start"], batch["paths"]):
            arrays = list(self.pool.map(self.prepare, [Path(p) for p in str(paths).split("\n")]))
            good = [a for a in arrays if isinstance(a, np.ndarray)]
            problems = [(e.path, e.reason) for e in arrays if isinstance(e, BadImageError)]
            feats = batch_features(good, self.model, self.device) if good else np.zeros((0, 0))
            out["side"].append(str(side))
            out["start"].append(int(start))
            out["count"].append(len(good))
            out["features"].append(feats.astype(np.float64).tobytes())
            out["bad"].append(json.dumps(problems))
        return out
