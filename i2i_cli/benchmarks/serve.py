"""Service benchmark: requests/s and latency percentiles of a running `i2i serve`, measured from its clients.

C concurrent clients (threads, one HTTP connection per request, as most clients open them) POST the same image
N times per round; each round gives requests/s (N / wall time) and every request's latency. Rounds repeat so
the figures come as medians with their spread. Run it on the machine the server runs on (loopback) to leave
the network out, or elsewhere to include it."""

from __future__ import annotations

import http.client
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from i2i_cli.errors import ConfigError


@dataclass
class ServeBench:
    url: str
    image: str
    size: tuple[int, int]  # (W, H)
    concurrency: int
    requests: int  # per round
    rounds: list[float] = field(default_factory=list)  # requests/s of each round
    latencies_ms: list[float] = field(default_factory=list)  # every request of every round
    batches: list[int] = field(default_factory=list)  # X-I2I-Batch of every request
    metadata: dict[str, Any] = field(default_factory=dict)

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "latency_ms": {f"p{q}": self.percentile(q) for q in (50, 90, 99)},
                "requests_per_s_median": statistics.median(self.rounds)}


def _post(host: str, port: int, path: str, body: bytes) -> tuple[float, int]:
    start = time.perf_counter()
    conn = http.client.HTTPConnection(host, port, timeout=300)
    try:
        conn.request("POST", path, body=body, headers={"Content-Type": "application/octet-stream"})
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            raise ConfigError(f"the server answered {response.status} to the benchmark image; check it with curl")
        return (time.perf_counter() - start) * 1000, int(response.getheader("X-I2I-Batch") or 1)
    finally:
        conn.close()


def run_serve_benchmark(url: str, image: Path, concurrency: int, requests: int, rounds: int,
                        progress: Callable[[int, int], None] | None = None) -> ServeBench:
    import json

    from PIL import Image

    parts = urlsplit(url if "://" in url else f"http://{url}")
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    try:
        conn = http.client.HTTPConnection(host, port, timeout=30)
        conn.request("GET", "/metadata")
        metadata = json.loads(conn.getresponse().read())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{url}: no i2i serve answering there ({exc}); start one with `i2i serve RUN`") from None
    body = image.read_bytes()
    with Image.open(image) as img:
        size = img.size
    bench = ServeBench(url, str(image), size, concurrency, requests, metadata=metadata)
    _post(host, port, "/translate", body)  # warm-up: the first forward pass allocates
    with ThreadPoolExecutor(concurrency) as pool:
        for r in range(rounds):
            start = time.perf_counter()
            results = list(pool.map(lambda _: _post(host, port, "/translate", body), range(requests)))
            bench.rounds.append(requests / (time.perf_counter() - start))
            bench.latencies_ms += [latency for latency, _ in results]
            bench.batches += [batch for _, batch in results]
            if progress:
                progress(r + 1, rounds)
    return bench
