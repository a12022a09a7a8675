"""The rooms' import rules, read from the source (no module is imported):

- imports run one way: dashboard -> warmpools -> prebuilds -> projects -> core, and any -> runner;
  runner imports no app and no Django;
- no function-level import of the project's own modules (they hide circles), except in an
  AppConfig.ready(), where Django wants signal hookups made once the models are loaded;
- no import circle between modules."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Each room and the rooms it may import (besides itself).
MAY_IMPORT = {
    "core": set(),
    "runner": set(),
    "projects": {"core", "runner"},
    "prebuilds": {"projects", "core", "runner"},
    "warmpools": {"prebuilds", "projects", "core", "runner"},
    "dashboard": {"warmpools", "prebuilds", "projects", "core", "runner"},
}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def sources():
    for room in MAY_IMPORT:
        for path in sorted((ROOT / room).rglob("*.py")):
            if "migrations" not in path.parts:
                yield path


def own_imports(path: Path):
    """(imported module, line, whether at module level, inside AppConfig.ready) for own modules."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module_name(path).rsplit(".", 1)[0] if path.name != "__init__.py" else module_name(path)

    def visit(node, top_level: bool, in_ready: bool):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                yield from visit(child, False, in_ready or child.name == "ready")
                continue
            names = []
            if isinstance(child, ast.Import):
                names = [alias.name for alias in child.names]
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - child.level + 1] + [base]).strip(".")
                # `from prebuilds import services` imports prebuilds.services; `from prebuilds.models
                # import Prebuild` imports prebuilds.models.
                names = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in child.names]
            for name in names:
                if name.split(".")[0] in MAY_IMPORT:
                    yield name, child.lineno, top_level, in_ready
            yield from visit(child, top_level, in_ready)

    yield from visit(tree, True, False)


MODULES = {module_name(path): path for path in sources()}


def resolve(name: str) -> str | None:
    """The project module an import names (`from prebuilds import services` names prebuilds.services)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def test_imports_run_one_way():
    wrong = []
    for module, path in MODULES.items():
        room = module.split(".")[0]
        for name, line, _, _ in own_imports(path):
            target = name.split(".")[0]
            if target != room and target not in MAY_IMPORT[room]:
                wrong.append(f"{path.relative_to(ROOT)}:{line} ({room}) imports {name}")
        if room == "runner":
            text = path.read_text()
            assert "import django" not in text and "from django" not in text, f"{path} imports Django"
    assert wrong == []


def test_no_function_level_import_of_own_modules():
    hidden = [
        f"{path.relative_to(ROOT)}:{line} imports {name} inside a function"
        for path in MODULES.values()
        for name, line, top_level, in_ready in own_imports(path)
        if not top_level and not in_ready
    ]
    assert hidden == []


def test_no_import_circle():
    graph = {
        module: {target for name, *_ in own_imports(path) if (target := resolve(name)) and target != module}
        for module, path in MODULES.items()
    }
    circles, state = [], {}

    def walk(module, trail):
        state[module] = "open"
        for target in sorted(graph[module]):
            if state.get(target) == "open":
                circles.append(" -> ".join(trail[trail.index(target) :] + [target]))
            elif target not in state:
                walk(target, trail + [target])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            walk(module, [module])
    assert circles == []
