"""Which checkpoint a command means: a path as given, hf://owner/name[@rev], or the newest finished run."""

from __future__ import annotations

import os
from pathlib import Path

from i2i_cli.engine.checkpoint import is_finished, newest_run, run_progress
from i2i_cli.errors import CheckpointError


def resolve_checkpoint(checkpoint: str | os.PathLike[str] | None, runs_root: Path = Path("runs")) -> tuple[Path, str]:
    """The run to use, and a note when it was chosen for the user (the newest under ./runs)."""
    if checkpoint is not None:
        return _local_checkpoint(checkpoint)
    newest = newest_run(runs_root)
    if newest is None:
        raise CheckpointError(f"no --checkpoint given and no trained run under {runs_root}/; pass --checkpoint RUN "
                              "(or train one: `i2i demo`)")
    finished = newest if is_finished(newest) else newest_run(runs_root, finished_only=True)
    if finished is None:
        step, planned = run_progress(newest)
        raise CheckpointError(f"no --checkpoint given, and the newest run under {runs_root}/, {newest}, is at step "
                              f"{step} of {planned} (still training, or stopped): pass --checkpoint {newest} to use "
                              "it as it is")
    if finished != newest:
        step, planned = run_progress(newest)
        return finished, (f"no --checkpoint given: using the newest finished run, {finished} ({newest} is at step "
                          f"{step} of {planned}; pass --checkpoint {newest} to use it)")
    return newest, f"no --checkpoint given: using the newest run, {newest}"


def _local_checkpoint(checkpoint: str | os.PathLike[str]) -> tuple[Path, str]:
    """A path as given; hf://owner/name[@rev] -> its snapshot folder in the Hugging Face cache, with a note."""
    from i2i_cli.engine.checkpoint import parse_hub_reference, resolve_hub_path

    reference = parse_hub_reference(checkpoint)
    if reference is None:
        return Path(checkpoint), ""
    folder = resolve_hub_path(checkpoint)
    repo, revision = reference
    return folder, f"hf://{repo}{'@' + revision if revision else ''}: {folder}"
