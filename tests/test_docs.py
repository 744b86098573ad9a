"""docs/ARCHITECTURE.md matches the tree: every module has its row, and every dotted name it gives exists.

Read from the source with ``ast`` (nothing is imported), so this is fast and needs no extra.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ARCHITECTURE = (ROOT / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
PACKAGES = {"s4rec": ROOT / "sdk" / "s4rec", "s4rec_train": ROOT / "training" / "s4rec_train",
            "s4rec_export": ROOT / "export" / "s4rec_export"}  # fmt: skip
JS_SOURCES = ROOT / "js" / "src"
MODULES_SECTION = ARCHITECTURE[ARCHITECTURE.index("## Modules") :]
# Dotted names of the artifact contract that are not Python names: metadata keys and the manifest file.
NOT_PYTHON = {"s4rec.format", "s4rec.format_version", "s4rec.metadata", "s4rec.json"}


def module_name(package: str, path: Path) -> str:
    parts = path.relative_to(PACKAGES[package]).with_suffix("").parts
    return ".".join([package, *parts]) if parts != ("__init__",) else package


def python_modules() -> dict[str, Path]:
    return {
        module_name(package, path): path
        for package, directory in PACKAGES.items()
        for path in sorted(directory.rglob("*.py"))
    }


def table_rows() -> set[str]:
    """The first cell of every row of the module tables: `s4rec.artifact`, `s4rec` (`__init__`), `index.js`."""
    return set(re.findall(r"^\| `([^`]+)`", MODULES_SECTION, flags=re.MULTILINE))


def defined_names(path: Path) -> set[str]:
    """The names a module defines or imports at its top level (its public and private attributes)."""
    names = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(t.id for t in targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.ImportFrom | ast.Import):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
    return names


def test_every_module_has_its_row():
    rows = table_rows()
    missing = [name for name in python_modules() if name not in rows]
    missing += [path.name for path in sorted(JS_SOURCES.glob("*.js")) if path.name not in rows]
    assert not missing, f"docs/ARCHITECTURE.md, Modules: add a row (module, its one-line job) for {missing}"


def test_every_row_is_a_module():
    modules = python_modules()
    stale = [row for row in table_rows() if row not in modules and not (JS_SOURCES / row).is_file()]
    assert not stale, f"docs/ARCHITECTURE.md, Modules: rows of modules that do not exist: {stale}"


def test_dotted_names_exist():
    """`s4rec.artifact.model_entry`, `s4rec_train.data.load_interactions`: the module, then the name in it."""
    modules = python_modules()
    wrong = []
    for reference in sorted(set(re.findall(r"`(s4rec(?:_train|_export)?(?:\.\w+)+)", ARCHITECTURE)) - NOT_PYTHON):
        parts = reference.split(".")
        # the longest prefix that is a module; the next part must be defined in it
        for cut in range(len(parts), 0, -1):
            if ".".join(parts[:cut]) in modules:
                break
        module, rest = ".".join(parts[:cut]), parts[cut:]
        if module not in modules or (rest and rest[0] not in defined_names(modules[module])):
            wrong.append(reference)
    assert not wrong, f"docs/ARCHITECTURE.md names what the source does not define: {wrong}"


def test_the_check_finds_a_missing_name(tmp_path):
    """The name check can fail: a module without the name is reported."""
    module = tmp_path / "m.py"
    module.write_text("from x import a as b\nc = 1\ndef d(): pass\nclass E: pass\n")
    assert defined_names(module) == {"b", "c", "d", "E"}
