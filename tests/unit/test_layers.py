"""The package's layers, checked from the source (docs/architecture.md, "Layers").

An AST walk over every module of chatkit/, function-level imports included: a rule that is not
tested is not a rule. Fails with the offending import named.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "chatkit"

#: Layer of each top-level part of chatkit, top to bottom. A module may import its own part and
#: any part of a lower layer, never a part of its own layer or a higher one.
LAYERS: dict[str, int] = {
    "cli": 0,
    "gui": 1,
    "server": 2, "client": 2, "discovery": 2, "bench": 2,
    "store": 3, "tls": 3,
    "protocol": 4, "net": 4, "ratelimit": 4, "errors": 4, "paths": 4,
}
#: Parts of a lower layer a part still may not import: the desktop client is a client (it
#: stands on client/ and discovery/), it never runs a server or the load generator.
FORBIDDEN: dict[str, set[str]] = {"gui": {"server", "bench", "store"}}
#: chatkit/__init__.py (the version) and __main__.py (calls the cli) stand outside the layers.
OUTSIDE = {"__init__", "__main__"}


def part_of(path: Path) -> str:
    relative = path.relative_to(PACKAGE)
    return relative.parts[0].removesuffix(".py")


def chatkit_imports(tree: ast.AST, path: Path) -> list[tuple[int, str]]:
    """(line, imported chatkit part) for every import in the module, at any depth."""
    found: list[tuple[int, str]] = []
    package = ".".join(("chatkit", *path.relative_to(PACKAGE).parent.parts))
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the module's package
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            names = [module]
            if module == "chatkit":  # `from chatkit import protocol`
                names = [f"chatkit.{alias.name}" for alias in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "chatkit" and len(parts) > 1:
                found.append((node.lineno, parts[1]))
    return found


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_every_part_has_a_layer() -> None:
    parts = {part_of(path) for path in modules()} - OUTSIDE
    assert parts <= LAYERS.keys(), f"give these a layer: {sorted(parts - LAYERS.keys())}"


def violations(path: Path, tree: ast.AST) -> list[str]:
    """Every import in `tree` (the module at `path`) that breaks the layers."""
    part = part_of(path)
    found = []
    for line, imported in chatkit_imports(tree, path):
        if imported in (part, "__init__", "__version__"):  # the version: chatkit/__init__.py
            continue
        if imported not in LAYERS or part not in LAYERS or LAYERS[imported] <= LAYERS[part] \
                or imported in FORBIDDEN.get(part, set()):
            found.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports "
                         f"chatkit.{imported} ({part} may not)")
    return found


def test_nothing_imports_upward_or_sideways() -> None:
    offences = []
    for path in modules():
        if part_of(path) not in OUTSIDE:
            offences += violations(path, ast.parse(path.read_text(), str(path)))
    assert not offences, "layer violations:\n" + "\n".join(offences)


def importers_of(library: str, allowed_part: str) -> list[str]:
    """Every import of `library` outside the part `allowed_part`."""
    offences = []
    for path in modules():
        if part_of(path) == allowed_part:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            if any(n == library or n.startswith(library + ".") for n in names):
                offences.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}")
    return offences


def test_only_cli_imports_click() -> None:
    offences = importers_of("click", "cli")
    assert not offences, f"only chatkit/cli imports click: {offences}"


def test_only_gui_imports_qt() -> None:
    # PySide6 is an optional extra: nothing outside chatkit/gui may need it
    offences = importers_of("PySide6", "gui") + importers_of("shiboken6", "gui")
    assert not offences, f"only chatkit/gui imports PySide6: {offences}"


def test_protocol_imports_nothing_of_chatkit_but_itself() -> None:
    offences = []
    for path in (PACKAGE / "protocol").rglob("*.py"):
        for line, imported in chatkit_imports(ast.parse(path.read_text()), path):
            if imported != "protocol":
                offences.append(f"{path.name}:{line} imports chatkit.{imported}")
    assert not offences, offences


def module_graph() -> dict[str, set[str]]:
    """Module name -> the chatkit modules it imports at module level (cycles matter there)."""
    graph: dict[str, set[str]] = {}
    names = {".".join(("chatkit", *p.relative_to(PACKAGE).with_suffix("").parts))
             .removesuffix(".__init__"): p for p in modules()}
    for name, path in names.items():
        edges: set[str] = set()
        tree = ast.parse(path.read_text())
        for node in tree.body:  # module level only: deferred imports cannot make a cycle
            if isinstance(node, ast.If):  # `if TYPE_CHECKING:` imports are never run
                continue
            if isinstance(node, ast.ImportFrom) and node.module and \
                    node.module.startswith("chatkit"):
                for alias in node.names:
                    target = f"{node.module}.{alias.name}"
                    edges.add(target if target in names else node.module)
            elif isinstance(node, ast.Import):
                edges.update(a.name for a in node.names if a.name.startswith("chatkit"))
        graph[name] = {e for e in edges if e in names and e != name}
    return graph


def test_no_import_cycle() -> None:
    graph = module_graph()
    state: dict[str, int] = {}  # 1 visiting, 2 done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                return stack[stack.index(target):] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            raise AssertionError("import cycle: " + " -> ".join(cycle))


def test_a_violation_is_reported_with_its_import() -> None:
    # The checker itself can fail: imports upward and sideways, even inside a function, are
    # found and named; imports downward pass.
    store_module = PACKAGE / "store" / "log.py"
    upward = ast.parse("def f():\n    from chatkit.server import Server\n")
    assert violations(store_module, upward) == [
        "chatkit/store/log.py:2 imports chatkit.server (store may not)"]
    client_module = PACKAGE / "client" / "app.py"
    sideways = ast.parse("import chatkit.discovery.probe\n")
    assert violations(client_module, sideways) == [
        "chatkit/client/app.py:1 imports chatkit.discovery (client may not)"]
    downward = ast.parse("from chatkit import protocol\nfrom chatkit.tls import TlsChannel\n")
    assert violations(client_module, downward) == []
    gui_module = PACKAGE / "gui" / "window.py"
    assert violations(gui_module, ast.parse("import chatkit.client.session\n")) == []
    assert violations(gui_module, ast.parse("from chatkit.server import Server\n")) == [
        "chatkit/gui/window.py:1 imports chatkit.server (gui may not)"]
