"""The package's map holds: layers import only downward, modules stay small, and the docs' names exist.

Layers, bottom to top: gpupage.core < gpupage.zoo < gpupage.controller < gpupage.experiments
< gpupage.distributed < gpupage.cli.
``kernels`` reads gpupage.core, gpupage.zoo and gpupage.controller.state only, and a gpupage module may
launch a kernel only if that kernel reads nothing above the module's own layer.
"""

import ast
import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("core", "zoo", "controller", "experiments", "distributed", "cli")
MAX_LINES = 700
KERNEL_READS = ("gpupage.core", "gpupage.zoo", "gpupage.controller.state")


def _modules() -> dict[str, Path]:
    out = {}
    for pkg in ("gpupage", "kernels"):
        for path in sorted((ROOT / pkg).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """Every module ``name`` imports, at the top or inside a function, as absolute names."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[:len(package.split(".")) - node.level + 1] if node.level else []
            mod = ".".join(base + ([node.module] if node.module else []))
            for a in node.names:  # `from pkg import submodule` imports the submodule
                found.add(f"{mod}.{a.name}" if f"{mod}.{a.name}" in MODULES else mod)
    return {m for m in found if m.split(".")[0] in ("gpupage", "kernels")}


IMPORTS = {name: _imports(name, path) for name, path in MODULES.items()}


def _layer(module: str) -> int:
    """Index in LAYERS of a gpupage module; the package root and __main__ sit above every layer."""
    parts = module.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 1 and parts[1] in LAYERS else len(LAYERS)


def _kernel_reach(module: str, seen=()) -> int:
    """The highest gpupage layer a kernels module reads, through other kernels modules too."""
    reach = -1
    for dep in IMPORTS[module]:
        if dep.startswith("gpupage"):
            reach = max(reach, _layer(dep))
        elif dep in MODULES and dep not in seen and dep != module:
            reach = max(reach, _kernel_reach(dep, seen + (module,)))
    return reach


def test_the_map_is_what_we_think_it_is():
    assert {m.split(".")[1] for m in MODULES if m.startswith("gpupage.") and MODULES[m].parent != ROOT / "gpupage"} \
        == set(LAYERS)
    assert len(IMPORTS["gpupage.controller.env"]) >= 4  # the parser sees relative and lazy imports


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m.startswith("gpupage.")))
def test_gpupage_layers_import_only_downward(module):
    own = _layer(module)
    for dep in IMPORTS[module]:
        if dep.startswith("gpupage"):
            assert _layer(dep) <= own, f"{module} ({LAYERS[own]}) imports {dep} from a layer above it"
        elif dep in MODULES:  # a kernels module: it may read nothing above this module's layer
            assert _kernel_reach(dep) <= own, f"{module} launches {dep}, which reads a layer above {LAYERS[own]}"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m.startswith("kernels")))
def test_kernels_read_core_zoo_and_the_env_state_only(module):
    for dep in IMPORTS[module]:
        if dep.startswith("gpupage"):
            assert dep.startswith(KERNEL_READS), f"{module} imports {dep}"


def test_controller_state_opens_the_env_features_loop():
    assert not {d for d in IMPORTS["gpupage.controller.state"] if d.startswith("gpupage")}
    assert "gpupage.controller.env" not in IMPORTS["gpupage.controller.features"]
    assert not {d for d in IMPORTS["kernels.env_step"] if d.startswith("gpupage")} - {"gpupage.controller.state"}


def test_registry_names_implementations_in_the_layers_below_the_controller():
    from gpupage.core.policies import POLICIES

    for p in POLICIES.values():
        assert p.cpu.split(":")[0].startswith(("gpupage.core.", "gpupage.zoo.")), p
        assert callable(p.implementation("cpu"))
        if p.triton is None:  # the CPU path serves it on every device
            continue
        assert p.triton.startswith("kernels."), p
        assert _kernel_reach(p.triton.split(":")[0]) <= LAYERS.index("zoo"), p
        assert callable(p.implementation("triton"))


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_is_too_long(module):
    n = len(MODULES[module].read_text().splitlines())
    assert n <= MAX_LINES, f"{module}: {n} lines (split it: at most {MAX_LINES})"


@pytest.mark.parametrize("package", sorted(m for m, p in MODULES.items() if p.name == "__init__.py"
                                           and m.startswith("gpupage.") and m != "gpupage.cli"))
def test_subpackages_say_what_they_own_and_import_nothing(package):
    tree = ast.parse(MODULES[package].read_text())
    doc = ast.get_docstring(tree)
    assert doc and "May import" in doc, f"{package}: docstring must say what it owns and what it may import"
    assert not [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))
                and not (isinstance(n, ast.ImportFrom) and n.module == "__future__")]


def test_public_surface_is_the_function_and_the_names():
    import gpupage

    for name in gpupage.__all__:
        assert getattr(gpupage, name) is getattr(importlib.import_module(gpupage._LAZY[name]), name)
    importlib.import_module("gpupage.core.simulate")  # a submodule import must not shadow the function
    ns = {}
    exec("from gpupage import simulate", ns)
    assert ns["simulate"] is gpupage.simulate and gpupage.simulate.__module__ == "gpupage.core.simulate"
    assert not set(gpupage.__all__) & {p.name for p in (ROOT / "gpupage").iterdir()}


def _docs():
    return {name: (ROOT / name).read_text() for name in ("README.md", "DEVELOPERS.md")}


def test_every_import_in_the_readme_python_blocks_works():
    blocks = re.findall(r"```python\n(.*?)```", _docs()["README.md"], flags=re.S)
    lines = [ln.strip() for b in blocks for ln in b.splitlines() if ln.strip().startswith(("import ", "from "))]
    assert len(lines) >= 3
    for line in lines:
        exec(line, {})


def _resolve(dotted: str):
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ModuleNotFoundError:
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr)
        return obj
    raise ModuleNotFoundError(dotted)


@pytest.mark.parametrize("doc", ["README.md", "DEVELOPERS.md"])
def test_every_module_path_and_file_the_docs_name_exists(doc):
    text = _docs()[doc]
    code = " ".join(re.findall(r"`([^`]+)`", text))
    dotted = set(re.findall(r"\b((?:gpupage|kernels)(?:\.\w+)+)", code))
    files = set(re.findall(r"\b((?:gpupage|kernels|scripts|tests)/[\w/]*(?:\.py|\.sh|/))", text))
    assert dotted and files
    for name in sorted(dotted):
        _resolve(name)
    for f in sorted(files):
        assert (ROOT / f).exists(), f"{doc} names {f}, which does not exist"
