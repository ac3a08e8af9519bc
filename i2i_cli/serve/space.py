"""A Hugging Face Space that runs `i2i app`'s page for a model pushed with `i2i hub push`.

Three files: app.py (loads hf://MODEL through i2i and launches the page), requirements.txt (i2i with its app and
hub extras) and README.md with the Space's front matter (sdk: gradio, sdk_version, app_file, models). The Space
downloads the model from the Hub when it starts, so it always runs the pushed weights."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from i2i_cli import __version__
from i2i_cli.errors import ConfigError
from i2i_cli.fsutil import atomic_write_text

APP_FILE = "app.py"
DEFAULT_GRADIO = "6.31.0"  # the version the page was tested with, when gradio is not installed here


def check_repo_id(repo_id: str, what: str) -> str:
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise ConfigError(f"{what} {repo_id}: a Hub repo is OWNER/NAME")
    return repo_id


def _gradio_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("gradio")
    except PackageNotFoundError:
        return DEFAULT_GRADIO


def space_files(model_repo: str, space_repo: str, method: str = "", requirement: str | None = None
                ) -> dict[str, str]:
    """{file name: text} of the Space for `model_repo`."""
    check_repo_id(model_repo, "model")
    check_repo_id(space_repo, "--space")
    app = "\n".join([
        f'"""The i2i page for the model {model_repo} (written by `i2i hub push --space`)."""',
        "",
        "from i2i_cli.serve.app import PageModel, build_app, launch_app",
        "",
        f'MODEL = "hf://{model_repo}"',
        "",
        'if __name__ == "__main__":',
        '    launch_app(build_app(PageModel(MODEL, device="auto")), host="0.0.0.0", port=7860)',
        ""])
    requirements = (requirement or f"i2i[app,hub]=={__version__}") + "\n"
    title = space_repo.split("/")[1]
    readme = "\n".join([
        "---", f"title: {title}", "emoji: 🎨", "colorFrom: indigo", "colorTo: pink", "sdk: gradio",
        f"sdk_version: {_gradio_version()}", f"app_file: {APP_FILE}", "pinned: false", "models:",
        f"  - {model_repo}", "tags:", "  - i2i", "  - image-to-image", *([f"  - {method}"] if method else []), "---",
        "", f"# {title}", "",
        f"Translate images with [{model_repo}](https://huggingface.co/{model_repo})"
        + (f" ({method})" if method else "") + ": drop an image, compare input and output with the slider, "
        "download the result. The page is `i2i app`; run it locally with",
        "", "```bash", f"pip install '{requirements.strip()}'", f"i2i app hf://{model_repo}", "```", ""])
    return {APP_FILE: app, "requirements.txt": requirements, "README.md": readme}


def write_space_folder(model_repo: str, space_repo: str, folder: str | os.PathLike[str], method: str = "",
                       overwrite: bool = False) -> list[Path]:
    """Write the Space's files into `folder` (refused if it has files, unless overwrite)."""
    target = Path(folder)
    if target.exists() and any(target.iterdir()) and not overwrite:
        raise ConfigError(f"{target}: the folder is not empty; pick a new one or pass --overwrite")
    files = space_files(model_repo, space_repo, method)
    target.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        atomic_write_text(target / name, text, overwrite=True)
    return [target / name for name in files]


def push_space(model_repo: str, space_repo: str, method: str = "", token: str | None = None) -> str:
    """Create (or update) the Space in one commit; its URL."""
    from huggingface_hub import CommitOperationAdd, HfApi

    from i2i_cli.hub import hub_call

    api = HfApi(token=token)
    with tempfile.TemporaryDirectory(prefix="i2i-space-") as tmp:
        files = write_space_folder(model_repo, space_repo, tmp, method)
        operations = [CommitOperationAdd(path_in_repo=p.name, path_or_fileobj=str(p)) for p in files]
        with hub_call(space_repo):
            api.create_repo(space_repo, repo_type="space", space_sdk="gradio", exist_ok=True)
            api.create_commit(space_repo, operations, commit_message=f"i2i hub push --space: {model_repo}",
                              repo_type="space")
    return f"https://huggingface.co/spaces/{space_repo}"
