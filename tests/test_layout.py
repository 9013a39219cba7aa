"""The package layers run one way: kernels < engine < streaming < profiler < emolive (the command line).

A module may import its own package and the packages below it, never one above:
the engine stays pure (no transport, no profiler, no command line), the
transport knows nothing of the profiler that measures it. The graph is read
from the source: `import` statements (relative ones resolved), and every string
constant naming one of the packages' modules (`importlib.import_module(...)`,
`python -m ...` in a subprocess, a logger name), so an import hidden in a string
counts like any other.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ["kernels", "engine", "streaming", "profiler", "emolive"]
RANK = {name: i for i, name in enumerate(LAYERS)}
# What never belongs in the engine: the network and its event-loop servers live in streaming.
TRANSPORT_LIBS = {"aiortc", "aiohttp", "websockets"}
_MODULE_STRING = re.compile(r"^(%s)(\.[A-Za-z_][A-Za-z0-9_]*)*$" % "|".join(LAYERS))


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_module(dotted: str) -> bool:
    p = ROOT.joinpath(*dotted.split("."))
    return p.with_suffix(".py").is_file() or (p / "__init__.py").is_file()


def imports_of(source: str, module: str, is_package: bool = False) -> set[str]:
    """Every module name `source` (the text of `module`) imports or names in a string."""
    found: set[str] = set()
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{a.name}" for a in node.names if _is_module(f"{target}.{a.name}"))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and _MODULE_STRING.match(node.value):
            if "." in node.value and _is_module(node.value):  # "emolive" alone is the product's name
                found.add(node.value)
    return found


def violations(module: str, imported: set[str]) -> list[str]:
    top = module.split(".")[0]
    out = []
    for name in sorted(imported):
        head = name.split(".")[0]
        if head in RANK and RANK[head] > RANK[top]:
            out.append(f"{module} imports {name} ({head} is above {top})")
        if head in ("benchmarks", "scripts", "tests"):
            out.append(f"{module} imports {name} (runnable scripts and tests are not libraries)")
        if top in ("kernels", "engine") and head in TRANSPORT_LIBS:
            out.append(f"{module} imports {name} (the engine is sans-I/O; the transport lives in streaming)")
    return out


def _package_modules():
    for top in LAYERS:
        for path in sorted((ROOT / top).rglob("*.py")):
            yield module_name(path), path


def test_every_layer_exists():
    for top in LAYERS:
        assert (ROOT / top / "__init__.py").is_file(), f"{top}/ is not a package"


def test_no_module_imports_a_package_above_its_own():
    problems = []
    for module, path in _package_modules():
        problems += violations(module, imports_of(path.read_text(), module, path.name == "__init__.py"))
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("module, source, expected", [
    ("engine.x", "from streaming.server import main", "streaming.server"),
    ("engine.x", "import profiler.bench", "profiler.bench"),
    ("engine.x", "import importlib\nm = importlib.import_module('streaming.server')", "streaming.server"),
    ("streaming.x", "cmd = [sys.executable, '-m', 'profiler.client']", "profiler.client"),
    ("engine.audio.x", "from ...streaming import server", "streaming.server"),
    ("engine.x", "import aiortc", "aiortc"),
])
def test_the_checker_sees_each_kind_of_upward_import(module, source, expected):
    found = imports_of(source, module)
    assert expected in found
    assert violations(module, found), f"{expected} from {module} should be a violation"


def test_the_checker_allows_imports_downward_and_within():
    src = "from engine.types import FaceState\nfrom .config import ServerConfig\nimport numpy"
    assert violations("streaming.server", imports_of(src, "streaming.server")) == []
