"""`i2i eval`: FID, KID and LPIPS between folders (or of a run's test split); `i2i eval fcn`: FCN-score."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from i2i_cli.cli import (
    FidMode,
    console,
    device_option,
    existing_path,
    finish_with_problems,
    handle_errors,
    info,
    json_option,
    parse_csv,
    pip_extra,
    print_table,
    progress_bar,
    warn,
    write_json,
)

eval_app = typer.Typer(help="Evaluate translations: FID / KID / LPIPS (default) or `fcn` (FCN-score).")


def _report(result: Any, title: str, json_out: Path | None, table: tuple[list[str], list[list[Any]]] | None = None
            ) -> None:
    columns, rows = table or (["metric", "value"], [(k, v) for k, v in result.values.items() if v is not None])
    print_table(title, columns, rows)
    for note in result.protocol.extra.get("warnings", []):
        warn(note)
    for role, w in result.protocol.unverified():
        warn(f"{role}: {w['path']} is unverified ({w['note']})")
    for message in result.warnings:
        warn(message)
    if json_out:
        write_json(json_out, result.to_json())
    elif not result.bad:
        console.print("add --json FILE to keep the numbers with their protocol")
    finish_with_problems(result.bad, f"{len(result.bad)} file(s) were skipped:",
                         "the numbers above leave them out; fix or remove the files and run again")


@eval_app.callback(invoke_without_command=True)
@handle_errors
def evaluate(
    ctx: typer.Context,
    real: Annotated[Path | None, typer.Option("--real", help="Folder of real (reference / ground-truth) images.", callback=existing_path("folder", "pass the folder of real images"))] = None,
    fake: Annotated[Path | None, typer.Option("--fake", help="Folder of generated images.", callback=existing_path("folder", "pass the folder of generated images"))] = None,
    checkpoint: Annotated[Path | None, typer.Option("--checkpoint", "-c", help="Evaluate a run on its test split (default: newest run).", callback=existing_path("run folder", "pass a run folder of `i2i train`"))] = None,
    data: Annotated[Path | None, typer.Option("--data", help="With --checkpoint: dataset to evaluate on (default: the run's).", callback=existing_path("dataset folder", "pass the dataset folder"))] = None,
    out: Annotated[Path | None, typer.Option("--out", help="With --checkpoint: where translations go (default RUN/eval/step_N).")] = None,
    metrics: Annotated[str, typer.Option(help="Comma-separated: fid, kid, lpips (paired, same file names), dino_struct (DINO-Struct distance: --real holds the translated inputs, same file names).")] = "fid,kid",
    mode: Annotated[FidMode, typer.Option(metavar="MODE", help="FID network and resize: clean, legacy_tensorflow, legacy_pytorch (clean-fid's), or stargan_v2 / stargan-v2 (StarGAN v2's own).")] = "clean",
    image_size: Annotated[int | None, typer.Option("--image-size", help="--mode stargan_v2: its first resize, StarGAN v2's img_size (default: the run's size, or 256 for folders).")] = None,
    fid_sqrt: Annotated[Literal["eigh", "sqrtm"], typer.Option("--fid-sqrt", help="FID's tr sqrt(S1 S2): eigh (symmetric eigenvalues, exact, seconds) or sqrtm (clean-fid's scipy sqrtm, ~40 s at 2048 features).")] = "eigh",
    lpips_net: Annotated[Literal["alex", "vgg"], typer.Option("--lpips-net", help="LPIPS backbone.")] = "alex",
    kid_subsets: Annotated[int, typer.Option(help="KID subsets.")] = 100,
    kid_subset_size: Annotated[int, typer.Option(help="KID subset size (capped by the folder sizes).")] = 1000,
    seed: Annotated[int, typer.Option(help="Seed of the KID subsets (and of latent codes / references of multi-domain runs).")] = 0,
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", help="Images per forward pass.")] = 32,
    device: Annotated[str, device_option()] = "auto",
    weights_dir: Annotated[Path | None, typer.Option("--weights-dir", help="Folder of weight files (as I2I_WEIGHTS_DIR).")] = None,
    guidance: Annotated[str, typer.Option(help="Multi-domain runs: latent, reference or both (comma-separated).")] = "latent,reference",
    outputs_per_input: Annotated[int, typer.Option("--outputs-per-input", help="Multi-domain runs: outputs per source image (StarGAN v2: 10).")] = 10,
    segmenter: Annotated[str | None, typer.Option(help="With --checkpoint of a paired labels -> photo run: also the FCN-score with this segmenter (a segmenter run, drn-cityscapes, torchvision:..., or TorchScript).")] = None,
    fcn_convention: Annotated[Literal["pix2pix", "drn"], typer.Option("--fcn-convention", help="FCN-score (--segmenter, or a segmenter run): pix2pix (absent classes count 0) or drn (skipped, as CUT / F-LSeSim).")] = "pix2pix",
    json_out: Annotated[Path | None, json_option("Write metrics and protocol as JSON")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing --json file.")] = False,
    max_pixels: Annotated[int | None, typer.Option("--max-pixels", help="Refuse images with more pixels than this (default 178,956,970 or I2I_MAX_PIXELS; 0: no limit).")] = None,
    engine: Annotated[Literal["local", "ray"], typer.Option(help=f"Folders: FID / KID features on this machine (local) or on a Ray cluster's actors (ray: {pip_extra('ray')}).")] = "local",
    ray_address: Annotated[str | None, typer.Option("--ray-address", help="--engine ray: join this cluster (else RAY_ADDRESS, else a local Ray).")] = None,
    actors: Annotated[int | None, typer.Option(help="--engine ray: feature actors (default: one per GPU; without GPUs one per 2 CPUs, at most 4).")] = None,
) -> None:
    """Compare a folder of generated images with real ones; the protocol goes with every number."""
    if ctx.invoked_subcommand is not None:
        return
    from i2i_cli.data.images import set_max_pixels
    from i2i_cli.errors import ConfigError
    from i2i_cli.evaluation.evaluate import EvalOptions, evaluate_folders
    from i2i_cli.evaluation.multidomain import MultiDomainOptions
    from i2i_cli.fsutil import check_output_file

    set_max_pixels(max_pixels)
    if json_out is not None:
        check_output_file(json_out, "--json")  # before the metrics, not after them

    options = EvalOptions(metrics=tuple(parse_csv(metrics)), mode=mode, lpips_net=lpips_net,
                          kid_subsets=kid_subsets, kid_subset_size=kid_subset_size, seed=seed, batch_size=batch_size,
                          device=device, weights_dir=weights_dir, image_size=image_size, segmenter=segmenter,
                          fcn_convention=fcn_convention, fid_sqrt=fid_sqrt)
    if (real is None) != (fake is None):
        raise ConfigError("pass both --real and --fake, or neither (then a run is evaluated: --checkpoint)")
    if engine == "ray" and real is None:
        raise ConfigError("--engine ray evaluates folders (--real / --fake) for now; translate the run's test split "
                          "with `i2i translate --engine ray`, then evaluate the folders")
    if engine == "local" and (ray_address is not None or actors is not None):
        raise ConfigError("--ray-address / --actors go with --engine ray")
    if segmenter and real is not None:
        raise ConfigError("--segmenter goes with --checkpoint; for folders use `i2i eval fcn --fake DIR --labels DIR`")
    with progress_bar("eval", None, transient=True) as advance:
        report = lambda stage, d, t: advance(0, completed=d, total=t, status=stage)  # noqa: E731
        if real is None:
            multidomain = MultiDomainOptions(guidance=tuple(parse_csv(guidance)), outputs_per_input=outputs_per_input,
                                             seed=seed)
            result, title, table = _evaluate_checkpoint(checkpoint, data, options, out, report, multidomain)
        else:
            if engine == "ray":
                from i2i_cli.ray_engine import RayOptions, evaluate_on_ray

                result = evaluate_on_ray(real, fake, options, RayOptions(address=ray_address, actors=actors), report)
            else:
                result = evaluate_folders(real, fake, options, progress=report)
            title, table = f"{fake} vs {real} ({result.protocol.mode or 'paired'})", None
    _report(result, title, json_out, table)


def _evaluate_checkpoint(checkpoint: Path | None, data: Path | None, options: Any, out: Path | None, report: Any,
                         multidomain: Any) -> tuple[Any, str, tuple[list[str], list[list[Any]]] | None]:
    """`i2i eval --checkpoint RUN`: translate its test split and evaluate; the result, its title and table."""
    from i2i_cli.evaluation.evaluate import evaluate_run
    from i2i_cli.evaluation.multidomain import task_table
    from i2i_cli.inference import resolve_checkpoint

    checkpoint, note = resolve_checkpoint(checkpoint)
    if note:
        info(note)
    result, work = evaluate_run(checkpoint, data, options, out, report, multidomain)
    extra = result.protocol.extra
    if extra.get("evaluation") == "multidomain":  # the method's `evaluation` hook, as stamped by evaluate_run
        return result, (f"{len(extra['tasks'])} tasks of {extra['checkpoint']} ({result.protocol.mode} FID vs "
                        f"{extra['fid_reference_split']}/, LPIPS diversity of {multidomain.outputs_per_input} outputs "
                        f"per input; translations in {work})"), task_table(result)
    if extra.get("evaluation") == "segmentation":  # its own accuracy on held-out label maps
        return result, (f"{extra['checkpoint']} segmenting {result.protocol.real} ({result.protocol.fcn['images']} "
                        f"photos, {result.protocol.fcn['convention']} convention; predictions in "
                        f"{work / 'predictions'})"), None
    return result, f"{work / 'fake'} vs {Path(result.protocol['real'])} ({result.protocol.mode or 'paired'})", None


@eval_app.command("fcn")
@handle_errors
def fcn(
    fake: Annotated[Path, typer.Option("--fake", help="Folder of generated photos.", callback=existing_path("folder", "pass the folder of generated photos"))],
    labels: Annotated[Path, typer.Option("--labels", help="Folder of label maps named like the photos.", callback=existing_path("folder", "pass the folder of label maps"))],
    real: Annotated[Path | None, typer.Option("--real", help="Real photos: also score them (the upper bound).")] = None,
    segmenter: Annotated[str, typer.Option(help="A run of `i2i train --model segmenter`, torchvision:fcn_resnet50, torchvision:deeplabv3_resnet50, or a TorchScript file.")] = "torchvision:fcn_resnet50",
    classes: Annotated[int | None, typer.Option(help="Label classes; labels >= this are ignored. Default: the segmenter run's, else 19 (Cityscapes train ids).")] = None,
    label_format: Annotated[Literal["auto", "trainid", "cityscapes-id", "color"], typer.Option("--label-format", help="cityscapes-id: the 34 ids; auto: the segmenter run's.")] = "auto",
    palette: Annotated[Path | None, typer.Option(help="Colour of each class ('r g b' per line or JSON) for colour label maps (default: the segmenter run's palette, else Cityscapes).")] = None,
    resolution: Annotated[Literal["label", "image"], typer.Option(help="label: resize images to the labels (pix2pix); image: resize labels.")] = "label",
    convention: Annotated[Literal["pix2pix", "drn"], typer.Option(help="Class acc / mIoU: pix2pix (get_scores: classes absent from the labels count 0) or drn (fyu/drn's nanmean: skipped; CUT / F-LSeSim).")] = "pix2pix",
    device: Annotated[str, device_option()] = "auto",
    weights_dir: Annotated[Path | None, typer.Option("--weights-dir", help="Folder of weight files (as I2I_WEIGHTS_DIR).")] = None,
    json_out: Annotated[Path | None, json_option("Write scores, per-class values and protocol as JSON")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing --json file.")] = False,
    max_pixels: Annotated[int | None, typer.Option("--max-pixels", help="Refuse images with more pixels than this (default 178,956,970 or I2I_MAX_PIXELS; 0: no limit).")] = None,
    engine: Annotated[Literal["local", "ray"], typer.Option(help=f"Folders: FID / KID features on this machine (local) or on a Ray cluster's actors (ray: {pip_extra('ray')}).")] = "local",
    ray_address: Annotated[str | None, typer.Option("--ray-address", help="--engine ray: join this cluster (else RAY_ADDRESS, else a local Ray).")] = None,
    actors: Annotated[int | None, typer.Option(help="--engine ray: feature actors (default: one per GPU; without GPUs one per 2 CPUs, at most 4).")] = None,
) -> None:
    """FCN-score: segment generated photos and compare with the label maps (pixel acc, class acc, mIoU)."""
    from i2i_cli.data.images import set_max_pixels
    from i2i_cli.evaluation.fcn_score import FcnOptions, evaluate_fcn
    from i2i_cli.fsutil import check_output_file

    set_max_pixels(max_pixels)
    if json_out is not None:
        check_output_file(json_out, "--json")  # before the metrics, not after them

    options = FcnOptions(n_classes=classes, segmenter=segmenter, resolution=resolution, label_format=label_format,
                         palette=palette, device=device, weights_dir=weights_dir, convention=convention)
    with progress_bar("fcn-score", None, transient=True) as advance:
        result = evaluate_fcn(fake, labels, options, real,
                              lambda stage, d, t: advance(0, completed=d, total=t, status=stage))
    _report(result, f"FCN-score of {fake} ({result.protocol.fcn['segmenter']}, {convention} convention)", json_out)


def register(app: typer.Typer) -> None:
    app.add_typer(eval_app, name="eval",
                  help="FID / KID / LPIPS between folders or of a run's test split; `eval fcn`: FCN-score.")
