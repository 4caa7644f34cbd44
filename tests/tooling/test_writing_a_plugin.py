"""docs/writing-a-plugin.md's example plugin is the real pattern, and it works.

The page's three files (a settings table in ``schema.py``, a metrics module, the entry
module) are taken from the page as written, installed into ``edge_plugins`` from a temporary
directory, and put through what the shipped plugins go through: the shape of their entry
modules, Kong's query command and metaschema (``kong_harness.plugin_servers``), the
reference generator, and a request through the guard on a recording PDK.
"""

from __future__ import annotations

import ast
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from prometheus_client import REGISTRY

import edge_plugins
from edge_plugins import edge_jwt, edge_rate_limit, edge_trace, reference
from edge_plugins.kong_schema import Field
from kong_harness.conf import PluginServerDef
from kong_harness.plugin_servers import query_plugin_info
from tests.support.recording_kong import RecordingKong
from tests.tooling.markdown import code_blocks

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "writing-a-plugin.md"
PACKAGE_DIR = "kong-plugins/src/edge_plugins/"
SHIPPED = (edge_trace, edge_jwt, edge_rate_limit)
EXAMPLE_MODULES = ("edge_plugins.edge_example", "edge_plugins.example")


def page_files() -> dict[str, str]:
    """The page's Python blocks by the path their first line names, under edge_plugins/."""
    files = {}
    for block in code_blocks(PAGE.read_text(encoding="utf-8"), "python"):
        first, _, body = block.partition("\n")
        assert first.startswith(f"# {PACKAGE_DIR}"), f"a block without its file: {first!r}"
        files[first.removeprefix(f"# {PACKAGE_DIR}")] = body
    return files


def entry_shape(source: str) -> dict[str, object]:
    """What the pattern fixes in an entry module, read from its syntax tree."""
    tree = ast.parse(source)
    top = {type(node).__name__ + ":" + _name(node) for node in tree.body}
    schema_import = any(
        isinstance(node, ast.ImportFrom)
        and (node.module or "").endswith(".schema")
        and any(alias.name == "FIELDS" for alias in node.names)
        for node in tree.body
    )
    schema_from_table = any(
        isinstance(node, ast.Assign)
        and _name(node) == "Schema"
        and ast.unparse(node.value) == "FIELDS.kong_schema()"
        for node in tree.body
    )
    (main,) = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "main"]
    run_plugin_calls = [
        call
        for call in ast.walk(main)
        if isinstance(call, ast.Call) and ast.unparse(call.func) == "run_plugin"
    ]
    (plugin,) = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Plugin"]
    phases = {
        method.name: [ast.unparse(d) for d in method.decorator_list]
        for method in plugin.body
        if isinstance(method, ast.FunctionDef) and method.name in ("access", "log", "rewrite")
    }
    return {
        "names": {
            name
            for name in (
                "Assign:NAME",
                "Assign:version",
                "Assign:priority",
                "Assign:DEFAULT_METRICS_PORT",
                "Assign:METRICS_MODULE",
                "Assign:PDK_CALLS",
                "Assign:FAILURE_BEHAVIOUR",
            )
            if name in top
        },
        "imports FIELDS from its schema.py": schema_import,
        "Schema = FIELDS.kong_schema()": schema_from_table,
        "main() calls run_plugin(..., preload=)": len(run_plugin_calls) == 1
        and any(kw.arg == "preload" for kw in run_plugin_calls[0].keywords),
        "every phase method is guarded": bool(phases)
        and all("guarded" in decorators for decorators in phases.values()),
    }


def _name(node: ast.stmt) -> str:
    if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
        return node.targets[0].id
    return getattr(node, "name", "")


def test_the_page_shows_a_schema_table_a_metrics_module_and_the_entry() -> None:
    assert sorted(page_files()) == ["edge_example.py", "example/metrics.py", "example/schema.py"]


def test_the_example_entry_has_the_shape_of_every_shipped_plugin() -> None:
    example = entry_shape(page_files()["edge_example.py"])
    for module in SHIPPED:
        shipped = entry_shape(Path(module.__file__ or "").read_text(encoding="utf-8"))
        assert all(shipped.values()), f"{module.NAME} left the pattern: {shipped}"
        assert example == shipped, f"the page's entry differs from {module.NAME}'s"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The page's files as a directory of ``edge_plugins`` (a package may span several)."""
    root = tmp_path_factory.mktemp("edge_plugins_example")
    for relative, body in page_files().items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        (path.parent / "__init__.py").touch()
        path.write_text(body, encoding="utf-8")
    (root / "__init__.py").unlink()  # the top level is edge_plugins' own
    edge_plugins.__path__.append(str(root))
    try:
        yield root
    finally:
        edge_plugins.__path__.remove(str(root))
        metrics = sys.modules.get("edge_plugins.example.metrics")
        if metrics is not None:
            REGISTRY.unregister(metrics.DECISIONS)
        for name in [n for n in sys.modules if n.startswith(EXAMPLE_MODULES)]:
            del sys.modules[name]
        for attribute in ("edge_example", "example"):
            vars(edge_plugins).pop(attribute, None)


@pytest.fixture(scope="module")
def example(installed: Path) -> ModuleType:
    from edge_plugins import edge_example  # the page's module, installed above

    return edge_example


def test_kongs_query_command_takes_its_dump(installed: Path) -> None:
    """process.lua runs the query command and takes element 0 of its JSON; the harness then
    checks the schema against Kong's metaschema."""
    runner = installed / "edge-example"
    runner.write_text(
        "import edge_plugins\n"
        f"edge_plugins.__path__.append({str(installed)!r})\n"
        "from edge_plugins.edge_example import main\n"
        "main()\n",
        encoding="utf-8",
    )
    command = f"{shlex.quote(sys.executable)} {shlex.quote(str(runner))} --dump"
    info = query_plugin_info(PluginServerDef("edge-example", "unused.socket", None, command))
    assert (info.name, info.priority, info.phases) == ("edge-example", 1000, ("access",))
    assert info.version == edge_trace.version


def _fields(fields: tuple[Field, ...]) -> Iterator[Field]:
    for field in fields:
        yield field
        yield from _fields(field.fields)


def test_every_setting_is_described_and_the_reference_page_renders(example: ModuleType) -> None:
    for field in _fields(example.FIELDS.fields):
        # Kong's metaschema bounds a description to 10..500 characters (metaschema.lua).
        assert 10 <= len(field.description) <= 500, field.name
    page = reference.render(example)
    assert '| `header_name` | string | `"X-Example"` |' in page
    assert "| `edge_example_decisions_total` | counter | `outcome` |" in page


def _config(example: ModuleType) -> dict[str, object]:
    return {field.name: field.default for field in example.FIELDS.fields}


def test_a_request_makes_the_declared_pdk_calls(example: ModuleType) -> None:
    present, missing = example.PDK_CALLS
    kong = RecordingKong({"kong.request.get_header": "yes"})
    example.Plugin(_config(example)).access(kong)
    assert kong.methods == list(present.calls)

    kong = RecordingKong()
    example.Plugin(_config(example)).access(kong)
    assert kong.methods == list(missing.calls)
    assert kong.args("kong.response.error") == (400, "X-Example is required")


def test_a_failing_handler_fails_closed_through_the_guard(example: ModuleType) -> None:
    def broken(name: str) -> str:
        raise RuntimeError("a bug in the plugin")

    kong = RecordingKong({"kong.request.get_header": broken})
    example.Plugin(_config(example)).access(kong)  # the guard: nothing raises into Kong
    assert kong.args("kong.response.error") == (500,)
