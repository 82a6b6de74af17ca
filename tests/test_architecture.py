"""flarelib's import graph follows the floors in docs/architecture.md: no cycles, imports only go down.

The floor table in docs/architecture.md (between ``<!-- layers:begin -->`` and ``<!-- layers:end -->``) is the
single source of truth; rows look like ``| 1 | cube | cube.goes, cube.prep, ..., cube |`` (floor number, name,
comma-separated modules, lowest floor first). Modules are named from the package down (``paths``,
``cube.store``); a subpackage's ``__init__`` is named by the subpackage (``explain``). A module may import
modules of strictly lower floors, and modules of its own floor listed *before* it in the row (a floor's row
is its wing's own order, lowest first); every module under flarelib/ is in exactly one floor; the top
``__init__`` is exempt and imports nothing from flarelib. flarelib's own imports go at the top of modules,
except deliberately lazy ones inside functions, which carry a comment with the word ``lazy`` on the same line
or the line above (``# lazy: torch start-up time``).

The graph is computed with ``ast`` from the source (nothing is imported), including imports inside functions:
``import flarelib.x.y``, ``from flarelib.x import y``, ``from flarelib.x.y import z``, ``from . import y``,
``from .y import z``, ``from .. import x`` and ``importlib.import_module("flarelib.x")``.
"""

from __future__ import annotations

import ast
import io
import re
import subprocess
import sys
import tokenize
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import ROOT

PACKAGE = "flarelib"
PACKAGE_DIR = ROOT / PACKAGE
ARCHITECTURE_MD = ROOT / "docs" / "architecture.md"
BEGIN, END = "<!-- layers:begin -->", "<!-- layers:end -->"
INIT = "__init__"
LAZY = re.compile(r"\blazy\b", re.IGNORECASE)


# --- the import graph ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Import:
    """One import of a flarelib module by another (``source`` imports ``target`` at ``path:line``)."""

    source: str
    target: str
    path: Path
    line: int
    in_function: bool
    lazy_comment: bool

    def __repr__(self) -> str:  # short in pytest's failure reports
        return f"<{self.source} -> {self.target} at {self.where()}>"

    def where(self) -> str:
        try:
            shown = self.path.relative_to(ROOT)
        except ValueError:
            shown = self.path
        return f"{shown}:{self.line}"


def package_modules(package_dir: Path) -> dict[str, Path]:
    """Module name -> file, for every ``.py`` under ``package_dir``: ``paths``, ``cube.store``, ``explain`` (a
    subpackage's ``__init__``) and ``__init__`` (the package's own)."""
    modules = {}
    for path in sorted(package_dir.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        parts = list(path.relative_to(package_dir).with_suffix("").parts)
        if parts[-1] == INIT and len(parts) > 1:
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def comment_lines(source: str) -> dict[int, str]:
    """Line number -> text of the comment on that line."""
    comments = {}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            comments[token.start[0]] = token.string
    return comments


def _longest_module(parts: list[str], modules: set[str]) -> str:
    """The longest leading run of ``parts`` that names a module (``cube.store.open_cube`` -> ``cube.store``)."""
    for end in range(len(parts), 0, -1):
        name = ".".join(parts[:end])
        if name in modules:
            return name
    return INIT


def _targets(node: ast.AST, modules: set[str], package: str, base: tuple[str, ...] = ()) -> list[str]:
    """The package modules that one import statement (or import_module call) imports; [] if none. ``base`` is
    the importing module's own (sub)package below ``package``, for relative imports (``()`` for the top)."""
    if isinstance(node, ast.Import):
        return [_longest_module(alias.name.split(".")[1:], modules)
                for alias in node.names if alias.name.split(".")[0] == package]
    if isinstance(node, ast.ImportFrom):
        if node.level == 0:
            parts = (node.module or "").split(".")
            if parts[0] != package:
                return []
            rest = parts[1:]
        else:
            if node.level - 1 > len(base):
                return []  # above the package
            rest = list(base[: len(base) - (node.level - 1)]) + (node.module.split(".") if node.module else [])
        # `from flarelib.x import y`: y is a module of x, or a name defined in x
        found = []
        for alias in node.names:
            found.append(_longest_module(rest + [alias.name], modules))
        return found
    if isinstance(node, ast.Call):  # importlib.import_module("flarelib.x")
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
        if name == "import_module" and node.args and isinstance(node.args[0], ast.Constant):
            value = node.args[0].value
            if isinstance(value, str) and value.split(".")[0] == package:
                return [_longest_module(value.split(".")[1:], modules)]
    return []


def module_imports(name: str, path: Path, modules: set[str], package: str = PACKAGE) -> list[Import]:
    """Every import of a package module in ``path``, at any depth, with whether it is inside a function."""
    source = path.read_text(encoding="utf-8")
    tree = ast.parse(source, filename=str(path))
    comments = comment_lines(source)
    found: list[Import] = []
    # the (sub)package the module sits in: a subpackage's __init__ is its package, a plain module its folder's
    base = tuple(name.split(".")) if path.name == f"{INIT}.py" and name != INIT else tuple(name.split(".")[:-1])

    def has_lazy_comment(node: ast.AST) -> bool:
        lines = range(node.lineno - 1, (node.end_lineno or node.lineno) + 1)  # the line above and the statement
        return any(LAZY.search(comments.get(line, "")) for line in lines)

    def visit(node: ast.AST, in_function: bool) -> None:
        for target in dict.fromkeys(_targets(node, modules, package, base)):
            found.append(Import(name, target, path, node.lineno, in_function, has_lazy_comment(node)))
        inside = in_function or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        for child in ast.iter_child_nodes(node):
            visit(child, inside)

    visit(tree, False)
    return found


def import_graph(package_dir: Path, package: str = PACKAGE) -> list[Import]:
    """All imports between the package's modules (imports of other packages are dropped)."""
    modules = package_modules(package_dir)
    edges = []
    for name, path in modules.items():
        edges += [imp for imp in module_imports(name, path, set(modules), package) if imp.target in modules]
    return edges


# --- the checks ----------------------------------------------------------------------------------------------------


def strongly_connected_components(graph: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's algorithm: the sets of modules that all reach each other."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            components.append(component)

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return components


def shortest_cycle_through(start: str, graph: dict[str, set[str]]) -> list[str]:
    """``[start, ..., start]`` by breadth-first search; start must lie on a cycle."""
    parents: dict[str, str] = {}
    frontier = [start]
    while start not in parents:
        following = []
        for v in frontier:
            for w in sorted(graph[v]):
                if w not in parents:
                    parents[w] = v
                    following.append(w)
        frontier = following
    path = [start]
    v = parents[start]
    while v != start:
        path.append(v)
        v = parents[v]
    path.append(start)
    return path[::-1]


def find_cycles(edges: list[Import]) -> list[list[str]]:
    """Import cycles as ``[a, b, ..., a]``: within each strongly connected component, the shortest cycle through
    each module (duplicates dropped), each written from its alphabetically first module."""
    graph: dict[str, set[str]] = {}
    for imp in edges:
        graph.setdefault(imp.source, set()).add(imp.target)
        graph.setdefault(imp.target, set())
    cycles = set()
    for component in strongly_connected_components(graph):
        if len(component) == 1 and not graph[next(iter(component))] & component:
            continue  # a module on no cycle
        within = {v: graph[v] & component for v in component}
        for v in component:
            ring = shortest_cycle_through(v, within)[:-1]
            first = ring.index(min(ring))
            ring = ring[first:] + ring[:first]
            cycles.add((*ring, ring[0]))
    return sorted(list(c) for c in cycles)


def describe_cycle(cycle: list[str], edges: list[Import]) -> str:
    where = {(imp.source, imp.target): imp.where() for imp in edges}
    steps = [f"{a} -> {b} ({where[a, b]})" for a, b in zip(cycle, cycle[1:], strict=False)]
    return " -> ".join(cycle) + ": " + "; ".join(steps)


@dataclass(frozen=True)
class Layer:
    number: int
    name: str
    position: int = 0  #: the module's place in its floor's row (0 first): it may import the modules before it


class LayerTableMissing(LookupError):
    pass


def parse_layers(markdown: str) -> dict[str, Layer]:
    """Module -> Layer from the table between the markers; LayerTableMissing / ValueError when absent or bad."""
    lines = markdown.splitlines()
    stripped = [line.strip() for line in lines]
    if BEGIN not in stripped or END not in stripped:
        raise LayerTableMissing(f"no layer table: the lines {BEGIN} and {END} are missing")
    begin, end = stripped.index(BEGIN), stripped.index(END)
    if end < begin:
        raise ValueError(f"{END} comes before {BEGIN}")
    layers: dict[str, Layer] = {}
    numbers: list[int] = []
    for line in stripped[begin + 1 : end]:
        if not line.startswith("|"):
            if line:
                raise ValueError(f"not a table row between the layer markers: {line!r}")
            continue
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if all(set(cell) <= set("-: ") for cell in cells):
            continue  # the |---|---| separator
        if len(cells) != 3:
            raise ValueError(f"a layer row has 3 columns (number | name | modules), got {line!r}")
        number, name, module_list = cells
        if not number.isdigit():
            if not numbers and not layers:
                continue  # the header row
            raise ValueError(f"layer number {number!r} is not an integer in {line!r}")
        if numbers and int(number) <= numbers[-1]:
            raise ValueError(f"layers go lowest first with distinct numbers; {number} follows {numbers[-1]}")
        numbers.append(int(number))
        for position, module in enumerate(m.strip().strip("`").strip() for m in module_list.split(",")):
            if not module:
                raise ValueError(f"empty module name in {line!r}")
            if module in layers:
                raise ValueError(f"{module} is in layer {layers[module].number} and layer {number}")
            layers[module] = Layer(int(number), name, position)
    if not layers:
        raise LayerTableMissing(f"the layer table between {BEGIN} and {END} has no rows")
    return layers


def unlayered_modules(modules: set[str], layers: dict[str, Layer]) -> list[str]:
    return sorted(modules - set(layers) - {INIT})


def layer_violations(edges: list[Import], layers: dict[str, Layer]) -> list[str]:
    """Imports from ``__init__``, imports of a module in a higher layer, and imports of a module of the same
    layer that is not listed before the importer in that layer's row."""
    problems = []
    for imp in edges:
        if imp.source == INIT:
            problems.append(f"{imp.where()}: {INIT} imports {imp.target}; {INIT} may import nothing from {PACKAGE}")
            continue
        if imp.target == INIT or imp.source not in layers or imp.target not in layers:
            continue  # names from __init__ are fine; unlayered modules are reported on their own
        src, dst = layers[imp.source], layers[imp.target]
        if dst.number > src.number or (dst.number == src.number and dst.position >= src.position):
            relation = ("a higher layer" if dst.number > src.number
                        else "the same layer, listed after it (or itself)")
            problems.append(f"{imp.where()}: {imp.source} (layer {src.number} {src.name}) imports {imp.target} "
                            f"(layer {dst.number} {dst.name}), {relation}")
    return sorted(set(problems))


def unmarked_lazy_imports(edges: list[Import]) -> list[str]:
    return sorted({f"{imp.where()}: {imp.source} imports {imp.target} inside a function without a '# lazy: why' "
                   "comment (move it to the top of the module, or say why it is lazy)"
                   for imp in edges if imp.in_function and not imp.lazy_comment})


# --- the real package ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def edges() -> list[Import]:
    return import_graph(PACKAGE_DIR)


def documented_layers() -> dict[str, Layer]:
    """The layers of docs/architecture.md; a missing table fails the calling test and says so."""
    try:
        return parse_layers(ARCHITECTURE_MD.read_text(encoding="utf-8"))
    except LayerTableMissing as error:
        missing = str(error)
    pytest.fail(f"docs/architecture.md: {missing}. Add the table of layers (lowest first) between those lines, "
                "rows like '| 0 | base | paths, checksums, labels |'", pytrace=False)


def test_flarelib_has_no_import_cycles(edges):
    cycles = find_cycles(edges)
    assert not cycles, "import cycles in flarelib:\n  " + "\n  ".join(describe_cycle(c, edges) for c in cycles)


def test_every_subpackage_is_a_regular_package_the_wheel_ships():
    """Each folder of modules has an ``__init__.py`` (no namespace packages) and is listed in pyproject.toml's
    packages, so a non-editable wheel carries it."""
    folders = sorted({p.parent for p in PACKAGE_DIR.rglob("*.py") if "__pycache__" not in p.parts} - {PACKAGE_DIR})
    missing_init = [str(f.relative_to(ROOT)) for f in folders if not (f / "__init__.py").is_file()]
    assert not missing_init, f"folders of flarelib modules without an __init__.py: {missing_init}"
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    unlisted = [f"{PACKAGE}.{'.'.join(f.relative_to(PACKAGE_DIR).parts)}" for f in folders]
    unlisted = [name for name in unlisted if f'"{name}"' not in pyproject]
    assert not unlisted, f"subpackages missing from [tool.setuptools] packages in pyproject.toml: {unlisted}"


def test_the_floors_are_few():
    """The issue's goal: about six floors (there were 14 layers of single modules before the subpackages)."""
    floors = {layer.number for layer in documented_layers().values()}
    assert len(floors) <= 8, f"{len(floors)} floors in docs/architecture.md"


def test_training_does_not_load_acquisition():
    """The catalog imports its kinds' builders lazily: the data module and the model load no archive code."""
    code = ("import sys, flarelib.learn.data, flarelib.learn.model; "
            "print(sorted(m for m in sys.modules if m.startswith('flarelib.cube.') and m.split('.')[-1] in "
            "('acquire', 'sdoml', 'synthetic', 'ingest')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]", f"importing the data module and the model loaded {out.stdout.strip()}"


def test_every_flarelib_module_is_in_a_layer():
    layers = documented_layers()
    missing = unlayered_modules(set(package_modules(PACKAGE_DIR)), layers)
    assert not missing, f"flarelib modules in no layer of docs/architecture.md: {', '.join(missing)}"


def test_the_layer_table_names_only_existing_modules():
    layers = documented_layers()
    stale = sorted(set(layers) - set(package_modules(PACKAGE_DIR)))
    assert not stale, f"docs/architecture.md's layer table names modules that flarelib does not have: {stale}"


def test_imports_only_go_to_lower_layers(edges):
    problems = layer_violations(edges, documented_layers())
    assert not problems, "imports against the layers of docs/architecture.md:\n  " + "\n  ".join(problems)


def test_imports_inside_functions_are_commented_as_lazy(edges):
    problems = unmarked_lazy_imports(edges)
    assert not problems, "flarelib's own imports go at the top of modules:\n  " + "\n  ".join(problems)


# --- the checker itself, on a made-up package ----------------------------------------------------------------------


TABLE = f"""# Architecture

{BEGIN}
| layer | name | modules |
|---|---|---|
| 0 | base | `low` |
| 1 | middle | mid, side |
| 2 | top | high |
{END}
"""


def write_package(root: Path, files: dict[str, str]) -> Path:
    package = root / "fakepkg"
    package.mkdir()
    for name, text in files.items():
        (package / f"{name}.py").write_text(text)
    return package


def test_checker_finds_a_cycle_an_upward_import_and_an_unlayered_module(tmp_path):
    package = write_package(tmp_path, {
        "__init__": '"""fake"""\n',
        "low": "import os\n\n\ndef f():\n    from fakepkg import high  # lazy: an upward import is still upward\n",
        "mid": "from fakepkg.low import f\n",
        "high": "from . import mid\nfrom .low import f\n\n\ndef g():\n    import fakepkg.extra\n",
        "extra": "import fakepkg.high\n",
    })
    edges = import_graph(package, "fakepkg")
    assert {(e.source, e.target) for e in edges} == {("low", "high"), ("mid", "low"), ("high", "mid"),
                                                     ("high", "low"), ("high", "extra"), ("extra", "high")}
    cycles = find_cycles(edges)
    assert cycles == [["extra", "high", "extra"], ["high", "low", "high"], ["high", "mid", "low", "high"]]
    assert "high -> mid -> low -> high: high -> mid (" in describe_cycle(cycles[2], edges)

    layers = parse_layers(TABLE)
    assert layers["low"] == Layer(0, "base") and layers["side"] == Layer(1, "middle", 1)
    assert unlayered_modules(set(package_modules(package)), layers) == ["extra"]
    problems = layer_violations(edges, layers)
    assert len(problems) == 1 and "low (layer 0 base) imports high (layer 2 top), a higher layer" in problems[0]

    unmarked = unmarked_lazy_imports(edges)
    assert len(unmarked) == 1 and "high imports extra inside a function" in unmarked[0]


def test_checker_rejects_same_layer_imports_and_imports_from_init(tmp_path):
    package = write_package(tmp_path, {
        "__init__": "from fakepkg.low import f\n",
        "low": "def f():\n    pass\n",
        "mid": "import fakepkg.side as s\nfrom fakepkg import f\n",  # `f` is a name from __init__: allowed
        "side": "",
        "high": "",
    })
    edges = import_graph(package, "fakepkg")
    problems = layer_violations(edges, parse_layers(TABLE))
    assert len(problems) == 2
    assert "__init__ imports low" in problems[0]
    assert "mid (layer 1 middle) imports side (layer 1 middle), the same layer" in problems[1]
    assert find_cycles(edges) == []


def test_checker_reads_subpackages_their_facades_and_relative_imports(tmp_path):
    package = write_package(tmp_path, {"__init__": "", "low": ""})
    wing = package / "wing"
    wing.mkdir()
    (wing / "__init__.py").write_text("from .first import f\nfrom .second import g\n")  # the wing's facade
    (wing / "first.py").write_text("from .. import low\n\n\ndef f():\n    pass\n")
    (wing / "second.py").write_text("from fakepkg.wing.first import f\nfrom fakepkg.wing import first\n"
                                    "import fakepkg.wing\n")  # the last: its own facade, listed after it
    (package / "top.py").write_text("from fakepkg import wing\nfrom fakepkg.wing import g\n")
    assert set(package_modules(package)) == {"__init__", "low", "wing", "wing.first", "wing.second", "top"}
    edges = import_graph(package, "fakepkg")
    assert {(e.source, e.target) for e in edges} == {
        ("wing", "wing.first"), ("wing", "wing.second"), ("wing.first", "low"), ("wing.second", "wing.first"),
        ("wing.second", "wing"), ("top", "wing")}
    table = f"{BEGIN}\n| 0 | base | low |\n| 1 | wing | wing.first, wing.second, wing |\n| 2 | top | top |\n{END}\n"
    problems = layer_violations(edges, parse_layers(table))
    assert len(problems) == 1
    assert "wing.second (layer 1 wing) imports wing (layer 1 wing), the same layer" in problems[0]
    assert find_cycles(edges) == [["wing", "wing.second", "wing"]]


def test_lazy_comment_on_the_line_above_or_the_same_line_counts(tmp_path):
    package = write_package(tmp_path, {
        "__init__": "",
        "low": "",
        "high": ("def a():\n    # lazy: start-up time\n    from fakepkg import low\n\n\n"
                 "def b():\n    from fakepkg.low import x  # Lazy, torch\n\n\n"
                 "def c():\n    # a comment that does not say why\n    import importlib\n"
                 "    return importlib.import_module('fakepkg.low')\n"),
    })
    edges = import_graph(package, "fakepkg")
    assert [(e.line, e.in_function, e.lazy_comment) for e in edges] == [(3, True, True), (7, True, True),
                                                                       (13, True, False)]
    assert len(unmarked_lazy_imports(edges)) == 1


def test_a_missing_or_broken_table_is_named():
    with pytest.raises(LayerTableMissing, match="layers:begin"):
        parse_layers("# Architecture\n\nno table here\n")
    with pytest.raises(ValueError, match="low is in layer 0 and layer 1"):
        parse_layers(TABLE.replace("mid, side", "mid, low"))
    with pytest.raises(ValueError, match="lowest first"):
        parse_layers(TABLE.replace("| 2 | top", "| 1 | top"))
