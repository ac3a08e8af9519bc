"""Output names and the collision rules: every output has its own file, checked before any work, and no output
lands on an input."""

from __future__ import annotations

import os
from pathlib import Path, PurePath
from typing import Any

from i2i_cli.data.images import (
    is_image_file,
    list_images,
)
from i2i_cli.errors import ConfigError, I2IError
from i2i_cli.fsutil import check_output_file, check_output_folder, folds_case
from i2i_cli.inference.options import TranslateOptions
from i2i_cli.inference.tiling import check_tile_options
from i2i_cli.video import video_output_path


def output_path(source: Path, file: Path, out: Path, suffix: str = ".png", tag: str = "", keep_extension: bool = False
                ) -> Path:
    """OUT/<relative folder>/NAME[__tag].png; with keep_extension NAME keeps the input's extension (a.webp.png).
    One input and an OUT named like an image (result.jpg): that file (result__tag.jpg per style)."""
    if writes_one_file(source, out):
        return out.with_name(out.stem + (f"__{tag}" if tag else "") + out.suffix)
    relative = file.relative_to(source) if source.is_dir() else Path(file.name)
    stem = relative.name if keep_extension else relative.stem
    return out / relative.parent / (stem + (f"__{tag}" if tag else "") + suffix)


def writes_one_file(source: str | os.PathLike[str], out: str | os.PathLike[str]) -> bool:
    """A single input image with an OUT that has an image extension: OUT is the output file, not a folder."""
    return (Path(source).is_file() and is_image_file(Path(source)) and is_image_file(Path(out))
            and not Path(out).is_dir())  # an existing folder named x.png stays a folder


def check_output_target(source: str | os.PathLike[str], out: str | os.PathLike[str]) -> None:
    """OUT as the file it names (one input, an image name) or as a folder: writable, before any work."""
    if writes_one_file(source, out):
        check_output_file(out, "OUT", suffix=Path(out).suffix)
    else:
        check_output_folder(out, "OUT")


def mask_path(target: Path) -> Path:
    return target.with_name(target.stem + "__mask.png")


def output_names(source: Path, files: list[Path], out: Path, tag: str = "") -> dict[Path, Path]:
    """Each input's output path. Inputs that would share one (a.png and a.webp -> a.png) keep their extension
    in the name: a.png stays a.png, a.webp becomes a.webp.png; any other input's keeps its plain name."""
    relative = {file: file.relative_to(source) if source.is_dir() else Path(file.name) for file in files}
    names = relative_output_names(list(relative.values()), tag)
    return {file: out / names[rel] for file, rel in relative.items()}


def relative_output_names(relatives: list[PurePath], tag: str = "") -> dict[PurePath, PurePath]:
    """output_names on paths relative to the input folder (and the output's to OUT): what every engine names,
    whether the files sit in a folder or under an object-store prefix."""
    def name(relative: PurePath, keep_extension: bool) -> PurePath:
        stem = relative.name if keep_extension else relative.stem
        return relative.parent / (stem + (f"__{tag}" if tag else "") + ".png")

    plain = {relative: name(relative, False) for relative in relatives}
    claims: dict[PurePath, list[PurePath]] = {}
    for relative, target in plain.items():
        claims.setdefault(target, []).append(relative)
    names = dict(plain)
    for owners in claims.values():
        if len(owners) > 1:
            for relative in owners:
                if relative.suffix != ".png":
                    names[relative] = name(relative, True)
    return names


def find_collisions(claims: list[tuple[str, Path]], fold_case: bool = False) -> dict[Path, list[str]]:
    """Output paths claimed by more than one (owner, path) pair: {path: owners}. Owners are what writes the file
    (an input, an input with a style, a video frame); any writer of several outputs checks them all here.
    `fold_case`: the output file system ignores case, so paths that differ only in case are one file."""
    owners: dict[str, list[str]] = {}
    first: dict[str, Path] = {}
    for owner, path in claims:
        key = str(path).casefold() if fold_case else str(path)
        first.setdefault(key, path)
        owners.setdefault(key, []).append(owner)
    return {first[key]: who for key, who in owners.items() if len(who) > 1}


def refuse_collisions(claims: list[tuple[str, Path]], fold_case: bool = False) -> None:
    """A one-line error listing the outputs that two inputs would write (nothing is written)."""
    clashes = find_collisions(claims, fold_case)
    if clashes:
        listed = "; ".join(f"{path} from {' and '.join(who)}" for path, who in list(clashes.items())[:5])
        more = f" (and {len(clashes) - 5} more)" if len(clashes) > 5 else ""
        raise ConfigError(f"{len(clashes)} output file(s) would each be written twice: {listed}{more}; rename the "
                          "inputs (or references) involved; nothing was written")


def output_claims(names: dict[Path, Path], save_masks: bool = False, label: str = "") -> list[tuple[str, Path]]:
    """(owner, output) for every file a translation of `names` writes, masks included."""
    claims = []
    for file, target in names.items():
        owner = f"{file}{label}"
        claims.append((owner, target))
        if save_masks:
            claims.append((f"{owner} (mask)", mask_path(target)))
    return claims


def skip_existing_output(source: Path, target: Path, opts: TranslateOptions) -> bool:
    """Whether an output that is already there is skipped (--skip-existing); refused when it is the input itself,
    or when it exists and neither --overwrite nor --skip-existing allows going on. Images and videos alike."""
    if not target.exists():
        return False
    if target.resolve() == source.resolve():
        raise ConfigError(f"{target}: the output would replace its own input; choose another OUT")
    if opts.overwrite:
        return False
    if not opts.skip_existing:
        raise I2IError(f"{target} already exists: pass --overwrite to replace it (or keep --skip-existing)")
    return True


def input_files(source: Path, allow_empty: bool = False) -> list[Path]:
    """The images of a translation: the one file, or every image under the folder."""
    if not source.exists():
        raise I2IError(f"{source}: no such file or folder")
    if source.is_file():
        if allow_empty and not is_image_file(source):
            return []
        if not is_image_file(source):
            raise I2IError(f"{source}: not an image file (by its extension)")
        return [source]
    files = list_images(source)
    if not files and not allow_empty:
        raise I2IError(f"{source}: no images found (looked recursively for png, jpg, bmp, tif, webp...)")
    return files


def _refuse_nested_folders(src: Path, dst: Path) -> None:
    """OUT inside a SOURCE folder (outputs would be read as inputs next time, or replace them) and a SOURCE folder
    inside OUT (its nested names can meet outputs: SOURCE/a.png lands on OUT/SOURCE/... of another input) are
    one case: the two folders overlap."""
    if not src.is_dir():
        return
    source, target = src.resolve(), dst.resolve()
    if target == source or source in target.parents:
        raise ConfigError(f"{dst}: is {'the input folder' if target == source else 'inside the input folder'} "
                          f"{src}; choose an OUT outside it (nothing was written)")
    if target in source.parents:
        raise ConfigError(f"{dst}: contains the input folder {src}, so outputs could land on inputs; choose an OUT "
                          "that neither contains nor lies inside SOURCE (nothing was written)")


def refuse_outputs_on_inputs(src: Path, dst: Path, inputs: list[Path], outputs: list[Path],
                             fold_case: bool = False) -> None:
    """The rule that keeps inputs safe: no output of a run may be any input of the run (whatever the nesting,
    symlinks or case folding), checked before any work, naming the paths."""
    _refuse_nested_folders(src, dst)

    def key(path: Path) -> str:
        text = os.path.realpath(path)
        return text.casefold() if fold_case else text

    sources = {key(file): file for file in inputs}
    hits = [(out, sources[key(out)]) for out in outputs if key(out) in sources]
    if hits:
        listed = "; ".join(f"{out} would replace its own input" if out == file else f"{out} is the input {file}"
                           for out, file in hits[:5])
        raise ConfigError(f"{len(hits)} output(s) would replace an input: {listed}; choose an OUT outside the "
                          "inputs (nothing was written)")


def check_translation(source: str | os.PathLike[str], out: str | os.PathLike[str], opts: TranslateOptions,
                      translator: Any = None, tags: tuple[str, ...] | list[str] = ("",),
                      videos: list[Path] | None = None) -> None:
    """Everything that would fail later, refused before any image is read: OUT (not over any input, a
    writable folder), the tile options for `translator`, and the output names of every input under every tag
    (style), masks and videos included."""
    src, dst = Path(source), Path(out)
    check_output_target(src, dst)
    if translator is not None:
        check_tile_options(translator, opts.tile, opts.overlap, opts.blend)
    files = input_files(src, allow_empty=bool(videos))
    claims: list[tuple[str, Path]] = []
    for tag in tags:
        claims += output_claims(output_names(src, files, dst, tag), opts.save_masks,
                                f" with style {tag}" if tag else "")
    claims += [(str(video), video_output_path(src, video, dst)) for video in videos or []]
    fold = folds_case(dst)
    refuse_outputs_on_inputs(src, dst, files + list(videos or []), [path for _, path in claims], fold)
    refuse_collisions(claims, fold_case=fold)
