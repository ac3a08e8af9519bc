"""`i2i eval --checkpoint RUN` for a multi-domain run (StarGAN v2): FID per task and LPIPS diversity.

StarGAN v2's protocol (clovaai/stargan-v2 metrics/eval.py): a task is every (source, target) pair of domains
with source != target. Latent-guided: each source image of the evaluation split is translated K times
(num_outs_per_domain = 10) with styles from K random latent codes mapped to the target domain;
reference-guided: K styles encoded from target-domain images of the evaluation split. FID of a task compares
all of its outputs with the target domain's training images; LPIPS diversity averages LPIPS over all
K(K-1)/2 pairs of each input's outputs, then over inputs (in `--mode stargan_v2`: per loader batch of
val_batch_size inputs, then over batches, as metrics/eval.py does). Both are reported per task and as the mean
over tasks. FID is computed in the chosen mode: clean-fid's `clean` by default (comparable with other clean-fid
numbers, not with the paper's table), or `stargan_v2`, StarGAN v2's own torchvision-Inception FID.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from i2i_cli.data.images import load_image, save_image, to_tensor, to_uint8
from i2i_cli.errors import BadImageError, ConfigError, DataError
from i2i_cli.evaluation import fid_kid
from i2i_cli.evaluation.lpips_metric import (
    AVERAGING,
    STARGAN_V2_BATCH,
    average_diversity,
    build_lpips,
    pair_distances,
)
from i2i_cli.evaluation.report import EvalResult, Protocol

GUIDANCE = ("latent", "reference")
Progress = Callable[[str, int, int], None]


@dataclass
class MultiDomainOptions:
    guidance: tuple[str, ...] = GUIDANCE
    outputs_per_input: int = 10  # StarGAN v2's num_outs_per_domain
    seed: int = 0
    val_batch_size: int = STARGAN_V2_BATCH  # --mode stargan_v2: the loader batch its LPIPS diversity averages over


@dataclass
class _Task:
    """One (source, target) task of one guidance: where its outputs go and how its draws are seeded."""

    guidance: str
    source: str
    target: str
    number: int  # position in the task list: part of the seed

    @property
    def name(self) -> str:
        return f"{self.source}2{self.target}"


def _image(path: Path, size: int) -> torch.Tensor:
    """(1, 3, size, size) in [-1, 1]: resized with PIL bilinear as the reference's evaluation loader does."""
    array = load_image(path)
    if array.shape[:2] != (size, size):
        array = np.array(Image.fromarray(array).resize((size, size), Image.BILINEAR))
    return to_tensor(array)[None]


def _splits(layout: Any) -> tuple[str, str]:
    """(evaluation split, FID reference split): val/ (else test/) is translated; the target domain's train/
    images are the FID reference as in StarGAN v2 (the evaluation split when the dataset has no train/)."""
    evaluation = next((s for s in ("val", "test") if s in layout.splits), None)
    if evaluation is None:
        raise DataError(f"{layout.root}: no val/ or test/ split to evaluate on (domains layout: val/<domain>/)")
    return evaluation, "train" if "train" in layout.splits else evaluation


def _check(md: MultiDomainOptions) -> None:
    unknown = [g for g in md.guidance if g not in GUIDANCE]
    if unknown or not md.guidance:
        raise ConfigError(f"--guidance: unknown {', '.join(unknown) or '(none)'}; choose from {', '.join(GUIDANCE)}")
    if md.outputs_per_input < 2:
        raise ConfigError("--outputs-per-input must be >= 2 (LPIPS diversity compares outputs of one input)")
    if md.val_batch_size < 1:
        raise ConfigError(f"val_batch_size {md.val_batch_size}: must be >= 1")


def _generator(seed: int, guidance: str, task_number: int) -> torch.Generator:
    """Each (guidance, task) draws from its own stream, so one task's numbers do not depend on the others."""
    state = np.random.SeedSequence([seed, GUIDANCE.index(guidance), task_number]).generate_state(1)[0]
    return torch.Generator().manual_seed(int(state))


@dataclass
class _Scorers:
    """The evaluation's networks, their device and FID resize, and the files skipped along the way."""

    lpips: torch.nn.Module
    inception: fid_kid.FeatureFn
    device: torch.device
    fid_size: int
    options: Any  # an EvalOptions
    bad: list[tuple[str, str]]

    def features(self, folder: Path) -> np.ndarray:
        o = self.options
        found, skipped = fid_kid.folder_features(folder, self.inception, o.mode, batch_size=o.batch_size,
                                                 device=self.device, threads=o.threads, image_size=self.fid_size)
        self.bad.extend(skipped)
        return found

    @property
    def averaging(self) -> str:
        """How LPIPS diversity is averaged: per loader batch under StarGAN v2's protocol, else per input."""
        return "stargan_v2" if self.options.mode == "stargan_v2" else "per_input"


def _scorers(options: Any, fid_size: int, protocol: Protocol) -> _Scorers:
    device = torch.device(options.device)
    lpips_model, lpips_weights = build_lpips(options.lpips_net, device, options.weights_dir)
    inception, inception_weights = fid_kid.inception(options.mode, device, options.weights_dir)
    protocol.set_fid_mode(options.mode, fid_size)
    protocol.add_weights("inception", inception_weights)
    protocol.add_weights("lpips_backbone", lpips_weights)
    return _Scorers(lpips_model, inception, device, fid_size, options, [])


def evaluate_multidomain(loaded: Any, layout: Any, work: Path, options: Any, md: MultiDomainOptions,
                         progress: Progress | None = None) -> EvalResult:
    """Translate every task K times per input under each guidance, then FID per task and LPIPS diversity.

    Outputs go to work/<guidance>/<source>2<target>/ (earlier PNGs there are removed first, as the reference
    clears its task folders). `options` is an EvalOptions (FID mode, LPIPS net, device, weights)."""
    from i2i_cli.inference import TorchStyles

    _check(md)
    evaluation, reference = _splits(layout)
    domains = list(loaded.method.domains)
    missing = [d for d in domains if d not in layout.splits[evaluation] or d not in layout.splits[reference]]
    if missing:
        raise DataError(f"{layout.root}: no images of domain(s) {', '.join(missing)} in {evaluation}/ or "
                        f"{reference}/; the run's domains are {', '.join(domains)}")
    size = int(loaded.run_config.config.get("size", 256))
    protocol = Protocol(real=str(layout.root), fake=str(work))
    scorers = _scorers(options, options.image_size or size, protocol)
    pairs = [(s, t) for t in domains for s in domains if s != t]  # the reference's order: by target, then source
    tasks = [_Task(g, s, t, n) for g in md.guidance for n, (s, t) in enumerate(pairs)]
    values, counts = _score_tasks(TorchStyles(loaded, options.device, "fp32"), tasks, layout, (evaluation, reference),
                                  domains, md, size, work, scorers, progress)
    for guidance in md.guidance:
        for metric in ("fid", "lpips"):
            per_task = [values[f"{metric}_{guidance}_{s}2{t}"] for s, t in pairs]
            values[f"{metric}_{guidance}_mean"] = float(np.mean(per_task))
    protocol.lpips = _lpips_protocol(scorers.averaging, options.lpips_net, md.val_batch_size)
    protocol.seeds["multidomain"] = md.seed
    protocol.update(_task_protocol(pairs, domains, md, (evaluation, reference), counts, size))
    _record_fid_sqrt(protocol, options, counts)
    return EvalResult(values, protocol, list(dict.fromkeys(scorers.bad)))


def _score_tasks(styles: Any, tasks: list[_Task], layout: Any, splits: tuple[str, str], domains: list[str],
                 md: MultiDomainOptions, size: int, work: Path, scorers: _Scorers, progress: Progress | None
                 ) -> tuple[dict[str, float | None], dict[str, dict[str, dict[str, int]]]]:
    """Each task's outputs written and scored: FID against the target's `reference` split, LPIPS diversity."""
    evaluation, reference = splits
    sources = layout.splits[evaluation]
    options = scorers.options
    total, done = sum(len(sources[task.source]) for task in tasks), 0
    values: dict[str, float | None] = {}
    counts: dict[str, dict[str, dict[str, int]]] = {g: {} for g in md.guidance}
    real_features: dict[str, np.ndarray] = {}
    for task in tasks:
        folder = work / task.guidance / task.name

        def step(n: int, t: int, task: _Task = task, start: int = done) -> None:
            if progress:
                progress(f"{task.guidance} {task.name}", start + n, total)

        distances, written = _translate_task(styles, task, sources[task.source], sources[task.target],
                                             domains.index(task.target), md, size, folder, scorers.lpips,
                                             scorers.device, scorers.bad, step)
        diversity = average_diversity(distances, scorers.averaging, md.val_batch_size)
        done += len(sources[task.source])
        if task.target not in real_features:
            real_features[task.target] = scorers.features(layout.root / reference / task.target)
        values[f"fid_{task.guidance}_{task.name}"] = fid_kid.fid_from_features(
            real_features[task.target], scorers.features(folder), options.fid_sqrt, options.mode,
            what=f"task {task.guidance} {task.name} ({layout.root / reference / task.target} vs {folder})")
        values[f"lpips_{task.guidance}_{task.name}"] = diversity
        counts[task.guidance][task.name] = {"inputs": written // md.outputs_per_input, "outputs": written,
                                            "fid_reference_images": int(real_features[task.target].shape[0])}
    return values, counts


def _task_protocol(pairs: list[tuple[str, str]], domains: list[str], md: MultiDomainOptions,
                   splits: tuple[str, str], counts: dict[str, dict[str, dict[str, int]]], size: int
                   ) -> dict[str, Any]:
    evaluation, reference = splits
    return {
        "tasks": [f"{s}2{t}" for s, t in pairs], "guidance": list(md.guidance), "domains": domains,
        "outputs_per_input": md.outputs_per_input, "lpips_pairs_per_input": md.outputs_per_input
        * (md.outputs_per_input - 1) // 2, "evaluation_split": evaluation, "fid_reference_split": reference,
        "fid_reference": f"the target domain's {reference}/ images (StarGAN v2: train/)",
        "fid_on": "the saved PNG outputs", "task_counts": counts, "image_size": size,
        "input_resize": f"PIL bilinear to {size}x{size} (inputs and references)",
        "latent_codes": "z ~ N(0, I), one per output, mapped to the target domain",
        "references": f"target-domain images of {evaluation}/: K distinct ones per input, drawn at random (a new "
                      "permutation when K exceeds the images)",
        "rng": "torch.Generator per (guidance, task) seeded with numpy SeedSequence([seed, guidance index, "
               "task index]); latent codes and reference draws in input order"}


def _lpips_protocol(averaging: str, net: str, batch_size: int) -> dict[str, Any]:
    """The LPIPS diversity's record: which averaging (per input, or StarGAN v2's per loader batch) and network."""
    record = {"kind": "diversity (StarGAN v2: LPIPS over all K(K-1)/2 pairs of one input's outputs; per task, then "
                      "the mean over tasks)", "averaging": averaging,
              "averaging_formula": AVERAGING[averaging].format(batch=batch_size),
              "net": net, "version": "0.1", "input_range": "[-1,1]", "on": "the generator's float outputs, before saving"}
    if averaging == "stargan_v2":
        record["batch_order"] = "inputs in file order (StarGAN v2's loader shuffles them)"
    return record


def _record_fid_sqrt(protocol: Protocol, options: Any, counts: dict[str, dict[str, dict[str, int]]]) -> None:
    """FID's square-root method, and a warning when a task's FID comes from fewer images than features."""
    protocol.update({"fid_sqrt": {"method": options.fid_sqrt, "formula": fid_kid.FID_SQRT_PROTOCOL[options.fid_sqrt]}})
    sizes = [(c["fid_reference_images"], c["outputs"]) for tasks in counts.values() for c in tasks.values()]
    if sizes and (note := fid_kid.few_images_warning(min(r for r, _ in sizes), min(f for _, f in sizes))):
        protocol.update({"warnings": [*protocol.extra.get("warnings", []), f"the smallest task: {note}"]})


def _reference_draws(n: int, k: int, generator: torch.Generator) -> torch.Tensor:
    """K reference indices for one input, distinct while K <= n: the reference walks a shuffled loader, so one
    input's K references are different images (a fresh permutation starts when K exceeds the images)."""
    rounds = -(-k // n)
    return torch.cat([torch.randperm(n, generator=generator) for _ in range(rounds)])[:k]


def _translate_task(styles: Any, task: _Task, sources: list[Path], references: list[Path], target: int,
                    md: MultiDomainOptions, size: int, folder: Path, lpips_model: torch.nn.Module,
                    device: torch.device, bad: list[tuple[str, str]],
                    progress: Callable[[int, int], None]) -> tuple[list[torch.Tensor], int]:
    """Write K outputs per source image into `folder` (NAME_kk.png) and return (each input's LPIPS over its
    K(K-1)/2 output pairs, files written); unreadable inputs or references are appended to `bad` and that input
    is skipped."""
    generator = _generator(md.seed, task.guidance, task.number)
    k = md.outputs_per_input
    if folder.is_dir():  # outputs of an earlier evaluation (maybe with another K) must not enter this FID
        for old in folder.glob("*.png"):
            old.unlink()
    per_input: list[torch.Tensor] = []  # pair distances per input: a task's outputs never all sit in memory
    for done, path in enumerate(sources, start=1):
        # draw before decoding so a bad file does not shift the draws of the inputs after it
        if task.guidance == "latent":
            draws: torch.Tensor = torch.randn(k, styles.latent_dim, generator=generator)
        else:
            draws = _reference_draws(len(references), k, generator)
        try:
            x = _image(path, size)
            if task.guidance == "latent":
                style = styles.from_latent(draws, target)
            else:
                style = styles.from_reference(torch.cat([_image(references[int(i)], size) for i in draws]), target)
        except BadImageError as exc:
            bad.append((exc.path, exc.reason))
            progress(done, len(sources))
            continue
        outputs = styles.translator(style)(x.expand(k, -1, -1, -1)).cpu()
        for j in range(k):
            save_image(to_uint8(outputs[j]), folder / f"{path.stem}_{j:02d}.png", overwrite=True)
        per_input.append(pair_distances([outputs[j : j + 1].to(device) for j in range(k)], lpips_model))
        progress(done, len(sources))
    if not per_input:
        raise DataError(f"{folder}: no readable source image to translate")
    return per_input, len(per_input) * k


def task_table(result: EvalResult) -> tuple[list[str], list[list[Any]]]:
    """(columns, rows) of a multi-domain result: one row per task, then the mean over tasks."""
    guidance, tasks = result.protocol.extra["guidance"], result.protocol.extra["tasks"]
    metrics = ("fid", "lpips")
    columns = ["task"] + [f"{'FID' if m == 'fid' else 'LPIPS'} {g}" for g in guidance for m in metrics]
    rows = [[task] + [result.values[f"{m}_{g}_{task}"] for g in guidance for m in metrics]
            for task in [*tasks, "mean"]]
    return columns, rows
