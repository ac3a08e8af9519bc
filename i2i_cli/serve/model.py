"""What the service and the page translate with: a model's facts, one request's image and options, and the
translation of a batch of requests (same-size requests with the same options go through one forward pass).

Everything here runs through the public translator (`i2i_cli.load` -> Translator), so one image through the
service or the page equals that image through `i2i translate`."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from i2i_cli.errors import ConfigError, I2IError

DIRECTIONS = ("AtoB", "BtoA")
log = logging.getLogger("i2i.serve")


@dataclass
class ModelFacts:
    """What /metadata and the page say about the loaded model (plain values: it crosses process borders)."""

    checkpoint: str
    kind: str  # "run" (PyTorch) or "onnx" (ONNX Runtime)
    method: str
    paper: str = ""
    code: str = ""
    direction: str = "AtoB"
    directions: list[str] = field(default_factory=lambda: ["AtoB"])
    domains: list[str] = field(default_factory=list)
    size_multiple: int = 1
    min_size: int = 1
    train_size: int | None = None
    precision: str = "fp32"
    step: int | None = None
    dataset: str = ""
    eval: dict[str, Any] | None = None  # the newest eval JSON of the run: its numbers and their protocol

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def model_facts(translator: Any, checkpoint: str) -> ModelFacts:
    """The facts of a loaded Translator (`i2i_cli.load`)."""
    loaded = translator.loaded
    facts = ModelFacts(checkpoint=checkpoint, kind="onnx" if translator.path.suffix == ".onnx" else "run",
                       method=translator.name, direction=translator.direction, domains=translator.domains,
                       size_multiple=translator.size_multiple, min_size=translator.min_size,
                       precision=translator.precision_ran)
    if loaded is None:
        return facts
    method = loaded.method
    facts.paper, facts.code, facts.step = method.paper, method.code, loaded.step
    facts.directions = list(DIRECTIONS) if method.two_sided and not translator.multi_domain else [translator.direction]
    facts.train_size = loaded.run_config.config.get("size")
    root = loaded.run_config.data.get("root", "")
    facts.dataset = f"{Path(root).name} ({loaded.run_config.data.get('layout', '')})" if root else ""
    facts.eval = _latest_eval(loaded.run_dir)
    return facts


def _latest_eval(run_dir: Path) -> dict[str, Any] | None:
    from i2i_cli.hub import EVAL_FILE, latest_eval_json

    found = latest_eval_json(run_dir)
    if found is None and (run_dir / EVAL_FILE).is_file():
        found = run_dir / EVAL_FILE
    if found is None:
        return None
    obj = json.loads(found.read_text())
    return {"file": found.name, **{k: v for k, v in obj.items() if k != "bad_files"}}


@dataclass
class TranslationRequest:
    """One image to translate with its options, decoded and checked before it is queued."""

    image: np.ndarray  # uint8 (H, W, 3)
    mime: str = "image/png"  # the encoding the client accepts
    direction: str = "AtoB"
    domain: str | None = None
    seed: int = 0
    style_ref: np.ndarray | None = None  # a StarGAN v2 style reference, uint8 (H, W, 3)
    tile: int = 0
    overlap: int = 32

    def group(self) -> tuple[Any, ...]:
        """Requests with the same key go through the network together."""
        style = hashlib.sha1(self.style_ref.tobytes()).hexdigest() if self.style_ref is not None else ""
        return (self.image.shape, self.direction, self.domain, self.seed, style, self.tile, self.overlap)


@dataclass
class TranslationResult:
    image: np.ndarray | None = None
    mime: str = "image/png"
    batch: int = 1  # how many requests shared its forward pass
    status: int = 200
    error: str = ""


def check_request(req: TranslationRequest, facts: ModelFacts) -> None:
    """Refuse what would fail in the network, before the request is queued (ConfigError: a 4xx)."""
    h, w = req.image.shape[:2]
    if min(h, w) < facts.min_size:
        raise ConfigError(f"{w}x{h} is smaller than this network takes ({facts.min_size} px); upscale it")
    if req.direction not in facts.directions:
        raise ConfigError(f"direction {req.direction}: this model translates {' or '.join(facts.directions)}")
    if facts.domains:
        if req.domain is None:
            raise ConfigError(f"{facts.method} needs a target domain: domain={'|'.join(facts.domains)}")
        if req.domain not in facts.domains:
            raise ConfigError(f"domain {req.domain}: unknown; this model has {', '.join(facts.domains)}")
    elif req.domain is not None or req.style_ref is not None:
        raise ConfigError(f"domain / style_ref: {facts.method} takes neither (only multi-domain models do)")
    if req.tile and (req.tile % facts.size_multiple or not 0 <= req.overlap < req.tile):
        raise ConfigError(f"tile {req.tile}: must be a multiple of {facts.size_multiple} and larger than overlap "
                          f"{req.overlap}")


class Translators:
    """The loaded model, one Translator per direction asked for (the other direction loads on first use)."""

    def __init__(self, checkpoint: str, device: str = "auto", precision: str = "auto", direction: str = "AtoB") -> None:
        from i2i_cli.api import load

        self.checkpoint, self.device, self.precision = checkpoint, device, precision
        self.by_direction = {direction: load(checkpoint, device, direction=direction, precision=precision)}
        self.default = self.by_direction[direction]

    def get(self, direction: str) -> Any:
        if direction not in self.by_direction:
            from i2i_cli.api import load

            self.by_direction[direction] = load(self.checkpoint, self.device, direction=direction,
                                                precision=self.precision)
        return self.by_direction[direction]

    def translate(self, requests: list[TranslationRequest]) -> list[TranslationResult]:
        """Each group of same-size, same-option requests in one forward pass; a failing group answers its own
        requests with the error and the others still translate."""
        groups: dict[tuple[Any, ...], list[int]] = {}
        for i, req in enumerate(requests):
            groups.setdefault(req.group(), []).append(i)
        results: list[TranslationResult] = [TranslationResult() for _ in requests]
        for indices in groups.values():
            try:
                outputs = self._run_group([requests[i] for i in indices])
            except I2IError as exc:
                for i in indices:
                    results[i] = TranslationResult(status=422, error=str(exc))
                continue
            except Exception as exc:  # noqa: BLE001 - one group's failure (out of memory...) must not fail the others
                reason = f"translation failed: {type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:200]}"
                log.exception("a batch of %d request(s) failed", len(indices))
                for i in indices:
                    results[i] = TranslationResult(status=500, error=reason)
                continue
            for i, output in zip(indices, outputs):
                results[i] = TranslationResult(output, requests[i].mime, batch=len(indices))
        return results

    def _run_group(self, group: list[TranslationRequest]) -> list[np.ndarray]:
        from i2i_cli.data.images import to_tensor_batch, to_uint8_batch

        first = group[0]
        translator = self.get(first.direction)
        x = to_tensor_batch([req.image for req in group])
        options: dict[str, Any] = {"tile": first.tile, "overlap": first.overlap}
        if translator.multi_domain:
            options.update(domain=first.domain, seed=first.seed, style_ref=first.style_ref)
        return to_uint8_batch(translator(x, **options))
