"""The package's layers (docs/architecture.md): every import inside cortexsim
points to the same layer or one below it, and no modules import each other in
a cycle. Read from the source with ast, imports inside functions included."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "cortexsim"

# Lowest first. A module may import from its own layer and the ones before it.
LAYERS = [
    {"errors", "validation", "backend", "files", "__init__"},
    {"model"},
    {"inference"},
    {"rules"},
    {"optim"},
    {"recording"},
    {"sim"},
    {"data", "analysis"},
    {"plots"},
    {"experiments"},
    {"report"},
    {"study"},
    {"cli", "__main__"},
]


def modules():
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        yield name, path


def imported(name, path):
    """Absolute names of the cortexsim modules ``path`` imports."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("cortexsim"):
                found.add(target)
                for alias in node.names:  # "from . import plots" imports a module
                    if (ROOT.parent / (target + "." + alias.name).replace(".", "/")).exists():
                        found.add(f"{target}.{alias.name}")
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("cortexsim")}
    return found


def layer(module):
    top = module.split(".")[1] if "." in module else "__init__"
    for i, members in enumerate(LAYERS):
        if top in members:
            return i
    raise AssertionError(f"{module}: no layer for {top!r}; add it to LAYERS and docs/architecture.md")


GRAPH = {name: imported(name, path) for name, path in modules()}


@pytest.mark.parametrize("module", sorted(m for m in GRAPH if m != "cortexsim"))
def test_imports_point_down(module):
    upward = sorted(t for t in GRAPH[module] if t != "cortexsim" and layer(t) > layer(module))
    assert not upward, f"{module} imports from a higher layer: {upward}"


def test_no_import_cycles():
    def resolve(target):  # "cortexsim.sim.probes" or the package "cortexsim.sim"
        return target if target in GRAPH else None

    state = {}

    def visit(node, trail):
        state[node] = "open"
        for target in sorted(filter(None, map(resolve, GRAPH[node]))):
            if target == "cortexsim" or target == node or node.startswith(target + "."):
                continue  # a package's own __init__ and the root API are not cycles of rooms
            if state.get(target) == "open":
                raise AssertionError("import cycle: " + " -> ".join(trail + [target]))
            if target not in state:
                visit(target, trail + [target])
        state[node] = "done"

    for module in sorted(GRAPH):
        if module not in state and module != "cortexsim":
            visit(module, [module])


def test_the_package_root_holds_few_modules():
    root_modules = sorted(p.stem for p in ROOT.glob("*.py"))
    assert len(root_modules) <= 10, root_modules
