"""The house rules, checked on the source text (AST; nothing is imported or run):

* each package of ``src/`` (and ``config/``) imports only the packages before it in ``LAYERS``, so there
  is no cycle and the floor (``src/utils``) imports nothing else of the project;
* top-level scripts import ``src/`` and ``config/``, never each other;
* every ``from <project module> import name`` (lazy imports inside functions included) names a module
  that exists and a name it defines.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ["src.utils", "config", "src.text", "src.language_model", "src.dataset", "src.transformer",
          "src.evaluation", "src.training"]
SCRIPT_FOLDERS = ["", "scripts", "bench", "scripts/demo_corpus"]


def package_of(module: str) -> str | None:
    for layer in LAYERS:
        if module == layer or module.startswith(layer + "."):
            return layer
    return None


def project_files():
    files = [p for p in (ROOT / "src").rglob("*.py")] + list((ROOT / "config").glob("*.py"))
    for folder in SCRIPT_FOLDERS:
        files += sorted((ROOT / folder).glob("*.py"))
    return files


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imports(path: Path):
    """``(line, imported module, names)`` of every import statement in ``path``, at any depth."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, ()
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module, tuple(a.name for a in node.names)


def module_path(module: str) -> Path | None:
    base = ROOT.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def defined_names(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                for leaf in ast.walk(target):
                    if isinstance(leaf, ast.Name):
                        names.add(leaf.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
    return names


# a script runs as a program (it has a __main__ guard); helper modules beside scripts (bench/proc_monitor.py)
# are libraries of their folder
SCRIPTS = {module_name(p) for folder in SCRIPT_FOLDERS for p in (ROOT / folder).glob("*.py")
           if '__name__ == "__main__"' in p.read_text(encoding="utf-8")}


def test_the_layer_list_covers_every_package():
    packages = {module_name(p) for p in (ROOT / "src").glob("*/__init__.py")}
    assert packages | {"config"} == set(LAYERS)


@pytest.mark.parametrize("path", [p for p in project_files() if package_of(module_name(p))],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_packages_import_only_the_layers_below(path):
    own = package_of(module_name(path))
    allowed = set(LAYERS[: LAYERS.index(own) + 1])
    wrong = [f"line {line}: {module}" for line, module, _ in imports(path)
             if (target := package_of(module)) and target not in allowed]
    wrong += [f"line {line}: {module} (a script)" for line, module, _ in imports(path) if module in SCRIPTS]
    assert not wrong, f"{own} may import only {sorted(allowed)}"


@pytest.mark.parametrize("path", [p for p in project_files() if module_name(p) in SCRIPTS],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_scripts_do_not_import_each_other(path):
    wrong = [f"line {line}: {module}" for line, module, _ in imports(path) if module in SCRIPTS]
    assert not wrong


@pytest.mark.parametrize("path", project_files() + sorted((ROOT / "tests").glob("*.py")),
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_every_imported_project_name_exists(path):
    missing = []
    for line, module, names in imports(path):
        if not package_of(module) and module not in SCRIPTS and not module.startswith("tests"):
            continue
        target = module_path(module)
        if target is None:
            missing.append(f"line {line}: no module {module}")
            continue
        defined = defined_names(target)
        submodules = {p.stem for p in target.parent.glob("*.py")} if target.name == "__init__.py" else set()
        missing += [f"line {line}: {module}.{n}" for n in names if n not in defined | submodules]
    assert not missing
