"""The import rule (docs/architecture.md): models <- i2i_cli.data <- engine <- evaluation / inference / export
<- commands. Read from the source with ast, so imports inside functions count too."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from typer.testing import CliRunner

from i2i_cli.main import app
from i2i_cli.models import registry
from i2i_cli.models.base import MethodConfig, OptimizerSpec, Phase, Progress, TranslationMethod

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("i2i_cli", "models")
MODELS = "i2i_cli.models"  # the source folder models/ installs as this package (pyproject's package-dir)
DATA_MAY_IMPORT = ("i2i_cli.data", "i2i_cli.errors", "i2i_cli.fsutil", MODELS)


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    if parts[0] == "models":
        parts = ("i2i_cli", *parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py"))}


def _owner(name: str, modules: dict[str, Path]) -> str | None:
    """The project module `name` refers to (a name imported from a module resolves to that module)."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{alias.name}" for alias in node.names] or [base]
        for target in targets:
            owner = _owner(target, modules)
            if owner and owner != name:
                found.add(owner)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def test_models_never_import_the_application() -> None:
    wrong = [(m, o) for m, outs in _graph().items() if _within(m, MODELS)
             for o in outs if _within(o, "i2i_cli") and not _within(o, MODELS)]
    assert not wrong, f"models/ imports i2i_cli: {wrong}"


def test_the_data_layer_imports_only_data_errors_fsutil_and_models() -> None:
    wrong = [(m, o) for m, outs in _graph().items() if _within(m, "i2i_cli.data")
             for o in outs if not any(_within(o, allowed) for allowed in DATA_MAY_IMPORT)]
    assert not wrong, f"i2i_cli/data imports outside its layer: {wrong}"


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_import_cycles_counting_imports_inside_functions() -> None:
    graph = {m: {o for o in outs if not _within(m, o)} for m, outs in _graph().items()}  # a package's own modules
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


# --- the application asks a method through its hooks (models/base.py) ------------------------------------
NETWORK_ATTRIBUTES = ("G", "E", "F")
NAME_HOLDERS = ("name", "method", "method_name")  # what a comparison with a method's name reads


def _identifier(node: ast.AST) -> str:
    """The name an expression ends with: `loaded.method` -> method, `f(x)` -> f, else ""."""
    if isinstance(node, ast.Call):
        node = node.func
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ""


def _method_literals(node: ast.AST, methods: set[str]) -> list[str]:
    """Registered method names written as string literals in `node` (a constant, tuple, list or set)."""
    items = node.elts if isinstance(node, (ast.Tuple, ast.List, ast.Set)) else [node]
    return [i.value for i in items if isinstance(i, ast.Constant) and i.value in methods]


def _reaches_into_a_method(node: ast.AST) -> str | None:
    if isinstance(node, ast.Attribute) and _identifier(node.value) == "method":
        if node.attr in NETWORK_ATTRIBUTES or (node.attr.startswith("_") and not node.attr.startswith("__")):
            return f"reads .{node.attr} of a method"
    return None


def _compares_a_method_name(node: ast.AST, methods: set[str]) -> str | None:
    if not isinstance(node, ast.Compare):
        return None
    sides = [node.left, *node.comparators]
    if not any(_identifier(s) in NAME_HOLDERS or _identifier(s).endswith("_method_name") for s in sides):
        return None
    names = [n for s in sides for n in _method_literals(s, methods)]
    return f"compares a method's name with {', '.join(names)}" if names else None


def method_intrusions(source: str, filename: str, methods: set[str]) -> list[tuple[str, int, str]]:
    """(file, line, what) for every read of a method's networks / private members, and every comparison of a
    method's name with a registered method's name, in `source`."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        what = _reaches_into_a_method(node) or _compares_a_method_name(node, methods)
        if what:
            found.append((filename, node.lineno, what))
    return sorted(found)


def test_the_application_never_reads_a_methods_networks_nor_compares_its_name() -> None:
    methods = set(registry.list_methods())
    found = []
    for path in sorted((ROOT / "i2i_cli").rglob("*.py")):
        relative = path.relative_to(ROOT).as_posix()
        if relative.startswith("i2i_cli/engine/"):  # the trainer and checkpoints own the networks
            continue
        found += method_intrusions(path.read_text(), relative, methods)
    assert not found, "ask the method through a hook of models/base.py instead: " + "; ".join(
        f"{file}:{line} {what}" for file, line, what in found)


def test_the_intrusion_finder_finds_each_kind() -> None:
    source = """
def f(method, loaded, run_config, other):
    a = method.G.encode(x)
    b = loaded.method._features(x)
    c = method.name == "cut"
    d = run_config.method != "segmenter"
    e = _run_method_name(run) in ("cut", "fastcut")
    fine = (method.name, other.G, method.config, loaded.method.translate(x), other.name == "l1", method.__class__)
"""
    found = method_intrusions(source, "x.py", set(registry.list_methods()))
    assert [line for _, line, _ in found] == [3, 4, 5, 6, 7]
    assert "cut, fastcut" in found[-1][2] and ".G" in found[0][2]


# --- adding a method is one file plus one registry line ------------------------------------------------------
@dataclasses.dataclass
class ThrowAwayConfig(MethodConfig):
    width: int = 4  # hidden channels of the one-layer translator


class ThrowAway(TranslationMethod):
    """A method that exists only in this test: a two-conv generator trained by L1 on paired data."""

    name = "throwaway"
    config_class = ThrowAwayConfig
    summary = "test-only: two convolutions and an L1 loss"
    paper = "none"
    code = "none"
    accepts = ("aligned",)

    def __init__(self, config: ThrowAwayConfig, domains: list[str] | None = None) -> None:
        super().__init__(config, domains)
        self.G = nn.Sequential(nn.Conv2d(3, config.width, 3, padding=1), nn.ReLU(),
                               nn.Conv2d(config.width, 3, 3, padding=1), nn.Tanh())

    def optimizers(self) -> list[OptimizerSpec]:
        return [OptimizerSpec("G", [{"params": list(self.G.parameters())}], self.config.lr,
                              (self.config.beta1, self.config.beta2))]

    def _loss(self, batch: dict[str, torch.Tensor], cache: dict[str, Any]) -> dict[str, torch.Tensor]:
        return {"L1": F.l1_loss(self.G(batch["A"]), batch["B"])}

    def phases(self, progress: Progress) -> list[Phase]:
        return [Phase("G", ("G",), self._loss)]

    def sample_rows(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"input": batch["A"], "output": self.translate(batch["A"]), "target": batch["B"]}

    @torch.no_grad()
    def translate(self, x: torch.Tensor, direction: str = "AtoB", **kwargs: Any) -> torch.Tensor:
        return self.G(x)

    def export_module(self, direction: str = "AtoB", **kwargs: Any) -> nn.Module:
        return self.G


def test_a_method_defined_in_one_file_and_one_registry_line_trains_translates_and_exports(
        datasets, tmp_path, monkeypatch) -> None:
    monkeypatch.setitem(registry._METHODS, "throwaway", f"{__name__}:ThrowAway")  # the one registry line
    runner = CliRunner()
    run, out = tmp_path / "run", tmp_path / "out"
    trained = runner.invoke(app, ["train", "--model", "throwaway", "--data", str(datasets["aligned"]),
                                  "--out", str(run), "--steps", "2", "--device", "cpu", "--set", "size=32"])
    assert trained.exit_code == 0, trained.output
    source = datasets["aligned"] / "test"
    translated = runner.invoke(app, ["translate", "--checkpoint", str(run), str(source), str(out), "--device", "cpu"])
    assert translated.exit_code == 0, translated.output
    assert len(list(out.glob("*.png"))) == len(list(source.glob("*.png")))
    exported = runner.invoke(app, ["export", "--checkpoint", str(run), "--out", str(tmp_path / "t.onnx")])
    assert exported.exit_code == 0, exported.output
    assert (tmp_path / "t.onnx").stat().st_size > 0
