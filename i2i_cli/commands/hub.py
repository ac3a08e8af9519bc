"""`i2i hub push`: a run as a Hugging Face Hub model repo (config.json, model.safetensors, a model card)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from i2i_cli.cli import console, handle_errors

hub_app = typer.Typer(help="Share runs on the Hugging Face Hub: push (or --to-folder). Load with --checkpoint hf://OWNER/NAME.",
                      no_args_is_help=True)


@hub_app.command("push")
@handle_errors
def push(
    run: Annotated[Path, typer.Argument(help="A run folder written by `i2i train` (or a Hub-layout folder).")],
    repo_id: Annotated[str, typer.Argument(metavar="OWNER/NAME", help="The model repo on the Hub (created if missing).")],
    private: Annotated[bool, typer.Option("--private", help="Create the repo private (an existing repo keeps its visibility).")] = False,
    revision: Annotated[str | None, typer.Option("--revision", help="Push to this branch (created from main if missing).")] = None,
    include_training_state: Annotated[bool, typer.Option("--include-training-state", help="Also upload the latest checkpoint with its optimizer state (to resume training).")] = False,
    eval_json: Annotated[Path | None, typer.Option("--eval-json", help="The eval JSON for the card (default: the newest under RUN/ and RUN/eval/).")] = None,
    to_folder: Annotated[Path | None, typer.Option("--to-folder", help="Write the repo's files into this folder instead of uploading.")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="With --to-folder: replace a folder that has files.")] = False,
    space: Annotated[str | None, typer.Option("--space", metavar="OWNER/NAME", help="Also write a Hugging Face Space running `i2i app`'s page for the model (with --to-folder: into TO_FOLDER-space).")] = None,
) -> None:
    """Upload config.json, model.safetensors (EMA weights where the method has them) and a generated model card
    in one commit; authentication is huggingface_hub's (HF_TOKEN or `hf auth login`)."""
    if space is not None:
        from i2i_cli.serve.space import check_repo_id

        check_repo_id(space, "--space")  # before the model is written or uploaded
    if to_folder is not None:
        from i2i_cli.hub import write_hub_folder

        files = write_hub_folder(run, to_folder, repo_id=repo_id, include_training_state=include_training_state,
                                 eval_json=eval_json, overwrite=overwrite)
        console.print(f"wrote {len(files)} files into {to_folder}: "
                      + ", ".join(p.relative_to(to_folder).as_posix() for p in files[:6])
                      + (" ..." if len(files) > 6 else ""))
        console.print(f"load it with: i2i translate --checkpoint {to_folder} IN/ OUT/")
        if space is not None:
            _space_folder(run, repo_id, space, to_folder, overwrite)
        return
    from i2i_cli.hub import push_run

    result = push_run(run, repo_id, private=private, revision=revision,
                      include_training_state=include_training_state, eval_json=eval_json)
    console.print(f"pushed {len(result.files)} files to {result.repo_id}@{result.revision} in one commit: {result.commit_url}")
    rev = f"@{revision}" if revision else ""
    console.print(f"load it with: i2i translate --checkpoint hf://{result.repo_id}{rev} IN/ OUT/")
    if space is not None:
        from i2i_cli.serve.space import push_space

        url = push_space(result.repo_id, space, _method(run))
        console.print(f"pushed the Space {space} (app.py, requirements.txt, README.md): {url}")


def _method(run: Path) -> str:
    from i2i_cli.engine.checkpoint import find_run, read_run_config

    return read_run_config(find_run(run)[0]).method


def _space_folder(run: Path, repo_id: str, space: str, to_folder: Path, overwrite: bool) -> None:
    from i2i_cli.serve.space import write_space_folder

    folder = to_folder.with_name(to_folder.name + "-space")
    files = write_space_folder(repo_id, space, folder, _method(run), overwrite=overwrite)
    console.print(f"wrote the Space {space} into {folder}: {', '.join(p.name for p in files)}; run the page "
                  f"locally with: i2i app {to_folder}")


def register(app: typer.Typer) -> None:
    app.add_typer(hub_app, name="hub", help="Share runs on the Hugging Face Hub (push, --to-folder); load with hf://OWNER/NAME.")
