"""What a regular (non-editable) install gives a user: the wheel carries i2i_cli and i2i_cli.models and no
top-level package of a generic name, so a researcher's own `models` package (every official repository of these
methods has one) and i2i live side by side in one Python process."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

from tests.run_factory import make_run

ROOT = Path(__file__).resolve().parents[1]


def _declared_packages() -> tuple[list[str], dict[str, str]]:
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    return setuptools["packages"], setuptools["package-dir"]


def _package_folders() -> set[str]:
    """Every folder with an __init__.py under i2i_cli/ and models/, named as it installs (models -> i2i_cli.models)."""
    _, mapping = _declared_packages()
    installed_as = {folder: name for name, folder in mapping.items()}
    found = set()
    for top in ("i2i_cli", "models"):
        for init in (ROOT / top).rglob("__init__.py"):
            parts = init.parent.relative_to(ROOT).parts
            found.add(".".join((installed_as.get(parts[0], parts[0]), *parts[1:])))
    return found


def test_pyproject_lists_every_package_folder() -> None:
    declared, _ = _declared_packages()
    assert sorted(declared) == sorted(_package_folders()), (
        "pyproject.toml [tool.setuptools] packages must list every package folder (new ones included)")


def _setuptools_major() -> int:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return int(version("setuptools").split(".")[0])
    except PackageNotFoundError:
        return 0


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import importlib.util

    if importlib.util.find_spec("pip") is None:
        pytest.skip("this environment has no pip (uv makes such virtual environments): the wheel is built with pip")
    out = tmp_path_factory.mktemp("wheel")
    # this environment's setuptools when it is new enough (no download); otherwise pip's isolated build
    isolation = [] if _setuptools_major() < 77 else ["--no-build-isolation"]
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", *isolation, "-q",
                            "-w", str(out), str(ROOT)], capture_output=True, text=True)
    assert built.returncode == 0, built.stderr[-2000:]
    (path,) = out.glob("i2i-*.whl")
    return path


def test_the_wheel_installs_no_generic_top_level_package(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith((".dist-info", ".data"))}
    assert tops == {"i2i_cli"}
    assert "i2i_cli/models/base.py" in names and "i2i_cli/models/methods/cut.py" in names


def test_a_users_own_models_package_and_i2i_work_in_one_process(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    installed = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target),
                                str(wheel)], capture_output=True, text=True)
    assert installed.returncode == 0, installed.stderr[-2000:]
    run = make_run(tmp_path / "run")
    checkout = tmp_path / "official-checkout"  # as in pytorch-CycleGAN-and-pix2pix: models/ with base_model.py
    (checkout / "models").mkdir(parents=True)
    (checkout / "models" / "__init__.py").write_text("OWNER = 'the user'\n")
    (checkout / "models" / "base.py").write_text("class BaseModel:\n    pass\n")
    code = ("import models, models.base; import i2i_cli; from PIL import Image; "
            f"out = i2i_cli.load({str(run)!r}, device='cpu')(Image.new('RGB', (32, 32))); "
            "import i2i_cli.models.base as ours; "
            "print(models.OWNER, models.base.BaseModel.__name__, out.size, ours.__file__.startswith(" + repr(str(target)) + "))")
    env = dict(os.environ, PYTHONPATH=str(target))  # the installed wheel first, as site-packages would be
    shown = subprocess.run([sys.executable, "-c", code], cwd=checkout, capture_output=True, text=True, env=env)
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert shown.stdout.split() == ["the", "user", "BaseModel", "(32,", "32)", "True"]
    cli = subprocess.run([sys.executable, "-m", "i2i_cli", "--version"], cwd=checkout, capture_output=True,
                         text=True, env=env)
    assert cli.returncode == 0 and cli.stdout.startswith("i2i "), cli.stderr[-2000:]
