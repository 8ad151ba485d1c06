"""The layering of digest/, read from its source with `ast` (nothing is imported): no
import cycle, imports that run one way (cli -> desk -> delivery -> audience -> email -> content ->
model, errors, files; web beside delivery; state only under delivery and audience),
small modules and functions, and a docstring in each subpackage that says what it owns.

Every import counts: module-level, function-local and under TYPE_CHECKING alike. Each
failure lists every offender with its file:line. The checks run on a small package in
tmp_path first, so that a scanner that found nothing could not pass for a clean tree."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.helpers import REPO

MAX_MODULE_LINES = 400
MAX_PARAMETERS = 6
MIN_DOCSTRING_LINES = 3

_BASE = frozenset({"model", "errors", "files"})
# What each part of digest/ may import besides itself. Each part is a subpackage, a
# top-level module, or "__init__" for digest/__init__.py.
MAY_IMPORT: dict[str, frozenset[str]] = {
    "__init__": frozenset(),
    "__main__": frozenset({"cli"}),
    "cli": frozenset({"desk", "archive", "delivery", "web", "audience", "email", "content"})
    | _BASE,
    "desk": frozenset({"delivery", "audience", "email", "content"}) | _BASE,
    "archive": frozenset({"delivery", "email", "content"}) | _BASE,
    "delivery": frozenset({"audience", "email", "content", "state"}) | _BASE,
    "web": frozenset({"audience", "email", "content"}) | _BASE,
    "audience": frozenset({"email", "content", "state"}) | _BASE,
    "email": frozenset({"content"}) | _BASE,
    "content": _BASE,
    "state": frozenset({"model", "errors"}),
    "files": frozenset({"errors"}),
    "errors": frozenset(),
    "model": frozenset(),
}


@dataclass(frozen=True)
class Import:
    """One import of a digest module by another, where it is written."""

    source: str
    target: str
    path: Path
    line: int

    def where(self, root: Path) -> str:
        return f"{self.path.relative_to(root)}:{self.line}"


def module_names(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package root/digest."""
    found: dict[str, Path] = {}
    for path in sorted((root / "digest").rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _imported(node: ast.Import | ast.ImportFrom, name: str, path: Path) -> Iterator[str]:
    """The dotted names NODE in module NAME (file PATH) imports, submodules spelled out."""
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
        return
    base = node.module or ""
    if node.level:
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for _ in range(node.level - 1):
            package = package.rpartition(".")[0]
        base = f"{package}.{base}".rstrip(".")
    yield from (f"{base}.{alias.name}" for alias in node.names)


def imports(root: Path) -> list[Import]:
    """Every import of one digest module by another, each resolved to the module it loads:
    ``from digest.email import message`` is digest.email.message, and ``from
    digest.email.message import Envelope`` is digest.email.message too."""
    modules = module_names(root)
    found: dict[Import, None] = {}  # in order, each import once
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            for dotted in _imported(node, name, path):
                target = dotted
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    found[Import(name, target, path, node.lineno)] = None
    return list(found)


def cycles(root: Path) -> list[str]:
    """One line per import cycle: each module, and where it imports the next."""
    edges: dict[str, dict[str, Import]] = {}
    for edge in imports(root):
        edges.setdefault(edge.source, {}).setdefault(edge.target, edge)
    reported: set[frozenset[str]] = set()
    found: list[str] = []
    done: set[str] = set()

    def visit(module: str, trail: list[Import]) -> None:
        for target, edge in sorted(edges.get(module, {}).items()):
            path = [*trail, edge]
            starts = [i for i, step in enumerate(path) if step.source == target]
            if starts:
                loop = path[starts[0]:]
                if frozenset(step.source for step in loop) not in reported:
                    reported.add(frozenset(step.source for step in loop))
                    found.append(" -> ".join(f"{s.source} ({s.where(root)})" for s in loop)
                                 + f" -> {target}")
            elif target not in done:
                visit(target, path)
        done.add(module)

    for module in sorted(edges):
        visit(module, [])
    return found


def layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def wrong_way_imports(root: Path) -> list[str]:
    """One line per import that runs against MAY_IMPORT, or from a part it does not know."""
    found: list[str] = []
    unplaced: set[str] = set()
    for edge in imports(root):
        source, target = layer(edge.source), layer(edge.target)
        allowed = MAY_IMPORT.get(source)
        if allowed is None:
            if source not in unplaced:
                unplaced.add(source)
                found.append(f"{edge.where(root)}: digest.{source} is in no layer of "
                             "MAY_IMPORT")
        elif source != target and target not in allowed:
            may = ", ".join(sorted(allowed)) or "nothing from digest"
            found.append(f"{edge.where(root)}: {edge.source} imports {edge.target}; "
                         f"{source} may import only {may}")
    return found


def long_modules(root: Path) -> list[str]:
    found: list[str] = []
    for path in module_names(root).values():
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > MAX_MODULE_LINES:
            found.append(f"{path.relative_to(root)}: {lines} lines")
    return found


def parameter_count(function: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Positional, keyword-only, *args and **kwargs alike; a leading self or cls is not one."""
    arguments = function.args
    positional = [*arguments.posonlyargs, *arguments.args]
    count = len(positional) + len(arguments.kwonlyargs)
    count += (arguments.vararg is not None) + (arguments.kwarg is not None)
    return count - bool(positional and positional[0].arg in ("self", "cls"))


def crowded_functions(root: Path) -> list[str]:
    found: list[str] = []
    for path in module_names(root).values():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                count = parameter_count(node)
                if count > MAX_PARAMETERS:
                    found.append(f"{path.relative_to(root)}:{node.lineno}: {node.name}() "
                                 f"takes {count} parameters")
    return found


def undocumented_packages(root: Path) -> list[str]:
    found: list[str] = []
    for path in sorted((root / "digest").glob("*/**/__init__.py")):
        docstring = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
        lines = [line for line in docstring.splitlines() if line.strip()]
        if len(lines) < MIN_DOCSTRING_LINES:
            found.append(f"{path.relative_to(root)}: a docstring of {len(lines)} lines; "
                         f"say in {MIN_DOCSTRING_LINES} or more what the package owns")
    return found


# --- the checks, on a small package that breaks each rule once --------------------------

BROKEN = {
    "digest/__init__.py": '"""The package."""\n',
    "digest/content/__init__.py": '"""Content.\nOwns articles.\nImports model only."""\n',
    "digest/content/page.py": "from __future__ import annotations\n\n"
                              "from typing import TYPE_CHECKING\n\n"
                              "if TYPE_CHECKING:\n    from digest.email import wire\n",
    "digest/email/__init__.py": '"""Email."""\n',
    "digest/email/wire.py": "def build(a, b, c, d, e, f, *rest):\n"
                            "    from ..content.page import render\n",
    "digest/email/ok.py": "class Mail:\n    def send(self, a, b, c, d, *, e, f): ...\n\n\n"
                          "from digest.model import Article\nfrom . import wire\n",
    "digest/model.py": "import digest.errors\n" + "x = 1\n" * MAX_MODULE_LINES,
    "digest/errors.py": "",
    "digest/stray.py": "from digest.content import page\n",
}


def broken_package(tmp_path: Path) -> Path:
    for name, text in BROKEN.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text, encoding="utf-8")
    return tmp_path


def test_the_checks_find_each_kind_of_offence(tmp_path: Path) -> None:
    root = broken_package(tmp_path)
    assert cycles(root) == [
        "digest.content.page (digest/content/page.py:6) -> "
        "digest.email.wire (digest/email/wire.py:2) -> digest.content.page"]
    assert wrong_way_imports(root) == [
        "digest/content/page.py:6: digest.content.page imports digest.email.wire; "
        "content may import only errors, files, model",
        "digest/model.py:1: digest.model imports digest.errors; "
        "model may import only nothing from digest",
        "digest/stray.py:1: digest.stray is in no layer of MAY_IMPORT",
    ]
    assert long_modules(root) == [f"digest/model.py: {MAX_MODULE_LINES + 1} lines"]
    assert crowded_functions(root) == ["digest/email/wire.py:1: build() takes 7 parameters"]
    assert undocumented_packages(root) == [
        "digest/email/__init__.py: a docstring of 1 lines; say in 3 or more what the "
        "package owns"]


# --- the checks, on digest/ itself ---------------------------------------------------------


def test_digest_has_no_import_cycle() -> None:
    found = cycles(REPO)
    assert not found, "import cycles:\n" + "\n".join(found)


def test_digest_imports_run_one_way() -> None:
    assert imports(REPO), "no imports found: the scanner is broken"
    found = wrong_way_imports(REPO)
    assert not found, "imports against the layering:\n" + "\n".join(found)


def test_no_digest_module_is_over_400_lines() -> None:
    found = long_modules(REPO)
    assert not found, f"modules over {MAX_MODULE_LINES} lines:\n" + "\n".join(found)


def test_no_digest_function_takes_more_than_6_parameters() -> None:
    found = crowded_functions(REPO)
    assert not found, f"more than {MAX_PARAMETERS} parameters:\n" + "\n".join(found)


def test_every_digest_subpackage_says_what_it_owns() -> None:
    found = undocumented_packages(REPO)
    assert not found, "\n".join(found)
