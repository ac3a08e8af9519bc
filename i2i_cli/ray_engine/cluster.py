"""Joining (or starting) a Ray cluster, and the actor-pool arguments of the installed Ray's map_batches."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

from i2i_cli.errors import ConfigError, I2IError
from i2i_cli.extras import require_extra

# object-store settings and credentials as pyarrow / fsspec read them, and i2i's own settings (weights, limits),
# handed from the driver to its actors: they read, write and load as the driver would
FORWARDED_VARIABLES = ("I2I_HOME", "I2I_WEIGHTS_DIR", "I2I_OFFLINE", "TORCH_HOME", "AWS_ENDPOINT_URL",
                       "AWS_ENDPOINT_URL_S3", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE",
                       "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_EC2_METADATA_DISABLED",
                       "GOOGLE_APPLICATION_CREDENTIALS", "I2I_MAX_PIXELS")


@dataclass
class RayOptions:
    """Where and how wide the Ray engine runs."""

    address: str | None = None  # None: RAY_ADDRESS, else a local Ray on this machine
    actors: int | None = None  # None: one per GPU of the cluster, else one per 2 CPUs (at most 4)
    cpus: int | None = None  # a local Ray: the cores it may use (None: all)
    cpus_per_actor: float = 1.0
    fail_once: str | None = None  # test hook: a marker file; the first actor to find it absent creates it and dies


@dataclass
class ClusterInfo:
    address: str  # "local" for a Ray started by i2i
    cpus: float
    gpus: float
    started: bool  # i2i started it (and shuts it down)


def require_ray() -> None:
    require_extra("ray", "ray", "--engine ray and i2i_cli.ray_engine")
    require_extra("pyarrow", "ray", "--engine ray and i2i_cli.ray_engine")


def connect(options: RayOptions) -> ClusterInfo:
    """Join the cluster at --ray-address (or RAY_ADDRESS), or start a local Ray with the cores asked for; a Ray
    already running in this process is used as it is."""
    require_ray()
    import ray

    started = False
    if not ray.is_initialized():
        address = options.address or os.environ.get("RAY_ADDRESS") or None
        if address is None and options.cpus is not None and options.cpus < 1:
            raise ConfigError(f"--ray-cpus {options.cpus}: pass 1 or more cores")
        try:
            ray.init(address=address, num_cpus=None if address else options.cpus, include_dashboard=False,
                     logging_level=logging.WARNING, log_to_driver=False, configure_logging=True)
        except ConnectionError as exc:
            raise I2IError(f"--ray-address {address}: no Ray cluster answers there ({exc}); start one with "
                           "`ray start --head` or leave --ray-address out for a local Ray") from exc
        started = True
    _quiet_ray_data()
    resources = ray.cluster_resources()
    where = "local" if started and not (options.address or os.environ.get("RAY_ADDRESS")) else (
        options.address or os.environ.get("RAY_ADDRESS") or "running")
    return ClusterInfo(where, float(resources.get("CPU", 0)), float(resources.get("GPU", 0)), started)


def disconnect(info: ClusterInfo) -> None:
    if info.started:
        import ray

        ray.shutdown()


def _quiet_ray_data() -> None:
    """i2i shows its own progress (a rich bar or plain lines): Ray Data's bars and plan logs are off."""
    from ray.data import DataContext

    logging.getLogger("ray.data").setLevel(logging.ERROR)  # before: turning the bars off logs a warning
    context = DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False


def actor_count(options: RayOptions, info: ClusterInfo) -> int:
    if options.actors is not None:
        if options.actors < 1:
            raise ConfigError(f"--actors {options.actors}: pass 1 or more")
        return options.actors
    if info.gpus >= 1:
        return int(info.gpus)
    return max(1, min(4, int(info.cpus // 2)))


def pool_arguments(actors: int, options: RayOptions, info: ClusterInfo) -> dict[str, Any]:
    """map_batches' actor-pool arguments: compute=ActorPoolStrategy up to Ray 2.8 and again from 2.51,
    concurrency= in between; one GPU per actor when the cluster has GPUs."""
    import ray
    from ray.data import ActorPoolStrategy

    major, minor = (int(part) for part in ray.__version__.split(".")[:2])
    arguments: dict[str, Any] = {"num_cpus": options.cpus_per_actor}
    forwarded = {name: os.environ[name] for name in FORWARDED_VARIABLES if name in os.environ}
    if forwarded:
        arguments["runtime_env"] = {"env_vars": forwarded}
    if info.gpus >= 1:
        arguments["num_gpus"] = 1
    if (major, minor) <= (2, 8) or (major, minor) >= (2, 51):
        arguments["compute"] = ActorPoolStrategy(size=actors)
    else:
        arguments["concurrency"] = actors
    return arguments
