"""`i2i methods show` tells a user what each option does: the comment on its config field is its help."""

from __future__ import annotations

import dataclasses
import json

import pytest
from typer.testing import CliRunner

from i2i_cli.main import app
from i2i_cli.models import registry
from i2i_cli.models.base import MethodConfig
from i2i_cli.models.option_help import option_help


@pytest.mark.parametrize("method", registry.list_methods())
def test_every_option_a_user_can_set_has_help(method: str) -> None:
    config = registry.method_class(method).config_class
    helps = option_help(config)
    undocumented = [f.name for f in config.options() if not helps.get(f.name)]
    assert not undocumented, f"{method}: comment these fields in its config dataclass: {undocumented}"


def test_help_comes_from_the_field_comment_and_a_subclass_note_is_kept() -> None:
    @dataclasses.dataclass
    class Base(MethodConfig):
        width: int = 64  # generator width

    @dataclasses.dataclass
    class Narrow(Base):
        # the narrow variant of
        # the paper
        width: int = 32
        depth: int = 3  # residual blocks

    helps = option_help(Narrow)
    assert helps["width"] == "generator width; here: the narrow variant of the paper"
    assert helps["depth"] == "residual blocks"
    assert helps["size"] == "training crop size; networks are built for it"  # MethodConfig's own


def test_methods_show_prints_each_options_help_in_the_table_and_the_json() -> None:
    runner = CliRunner()
    shown = runner.invoke(app, ["methods", "show", "cut"], env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    row = next(line for line in shown.output.splitlines() if " nce_T " in line)
    assert "temperature of PatchNCE's softmax" in row
    as_json = json.loads(runner.invoke(app, ["methods", "show", "cut", "--json"]).stdout)
    assert as_json["help"]["lambda_NCE"] == "PatchNCE loss weight"
    assert set(as_json["help"]) == set(as_json["defaults"])
