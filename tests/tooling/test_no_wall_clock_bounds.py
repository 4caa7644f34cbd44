"""No correctness test asserts a wall-clock bound (docs/testing.md, "No wall-clock bounds").

CI shares a 2-core machine with other jobs: a test that asserts "this took under 2 s" fails
when the machine is busy, not when the code is wrong, and a red CI does not land. Tests assert
what the code does instead (the timeout it passes, the calls it makes, the counter it bumps).

The rule, checked on the syntax tree of every test file outside ``tests/bench``: no ``assert``,
``pytest.approx`` or ``unittest`` comparison (``assertLess``…) has an operand derived from the
clock, that is a call to ``time.monotonic``/``perf_counter``/``time`` (or their ``_ns`` forms),
a name assigned from one (directly or through other such names), or a name that says it is a
measurement (``elapsed``, ``duration``, ``took``). A deadline in a polling loop is a *wait*,
not the property under test: ``while time.monotonic() < deadline`` or ``if … > deadline:
raise`` is not an assertion and is not flagged. A hang guard is a generous timeout passed to
``join``/``wait``/``pytest.mark.timeout``, again not an assertion.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from tests.tooling.repository_files import ROOT, text_files

THIS_FILE = Path(__file__).resolve()
CLOCKS = {"monotonic", "perf_counter", "time", "monotonic_ns", "perf_counter_ns", "time_ns"}
MEASUREMENT_NAME = re.compile(r"(?:^|_)(?:elapsed|duration|took)(?:_|$)|^seconds$", re.IGNORECASE)
UNITTEST_COMPARISONS = {
    "assertLess",
    "assertLessEqual",
    "assertGreater",
    "assertGreaterEqual",
    "assertAlmostEqual",
}

# The files with bounds written before this check, and how many: each to be rewritten as an
# assertion on what the code does. The check fails on any other bound, and when a file has
# fewer than listed (lower the number: the list only shrinks).
NOT_YET_REWRITTEN = {
    "tests/e2e/test_edge_jwt_e2e.py": 1,
}


def _is_clock_call(node: ast.AST) -> bool:
    """``time.monotonic()``, ``perf_counter()`` (imported by name), ``time.time_ns()``…"""
    if not isinstance(node, ast.Call):
        return False
    func = node.func
    if isinstance(func, ast.Attribute):
        return (
            func.attr in CLOCKS
            and isinstance(func.value, ast.Name)
            and func.value.id in {"time", "_time"}
        )
    return isinstance(func, ast.Name) and func.id in CLOCKS - {"time"}


def _name_of(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return ast.unparse(node)
    return None


# What an expression is, as far as the clock goes: a reading of it (a point in time: ``start``,
# ``deadline``), a duration (the difference of two readings: ``elapsed``), or neither.
READING, DURATION = "reading", "duration"
_WRAPPERS = {"round", "abs", "int", "float", "max", "min", "sum", "sorted", "median", "mean"}


def _kind(node: ast.AST, names: dict[str, str]) -> str | None:
    if _is_clock_call(node):
        return READING
    name = _name_of(node)
    if name is not None:
        if MEASUREMENT_NAME.search(name.rsplit(".", 1)[-1]):
            return DURATION
        return names.get(name)
    if isinstance(node, ast.UnaryOp):
        return _kind(node.operand, names)
    if isinstance(node, ast.Subscript):  # added[-1]
        return _kind(node.value, names)
    if isinstance(node, (ast.ListComp, ast.GeneratorExp)):  # [now - start for …]
        return _kind(node.elt, names)
    if isinstance(node, ast.BinOp):
        kinds = {_kind(node.left, names), _kind(node.right, names)}
        if isinstance(node.op, ast.Sub) and kinds == {READING}:
            return DURATION  # now - start
        if DURATION in kinds:
            return DURATION
        return READING if READING in kinds else None  # start + 2.0 is a deadline
    if isinstance(node, ast.Call):
        func = node.func
        called = func.attr if isinstance(func, ast.Attribute) else _name_of(func)
        if called in _WRAPPERS:
            kinds = {_kind(argument, names) for argument in node.args}
            return DURATION if DURATION in kinds else READING if READING in kinds else None
    return None


def _scope_nodes(scope: ast.AST) -> list[ast.AST]:
    """The nodes of a function (its nested functions included, which see its names) or, for
    the module, of its top-level code only (each function is a scope of its own)."""
    if not isinstance(scope, ast.Module):
        return list(ast.walk(scope))
    nodes: list[ast.AST] = []
    pending: list[ast.AST] = list(scope.body)
    while pending:
        node = pending.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue
        nodes.append(node)
        pending.extend(ast.iter_child_nodes(node))
    return nodes


def _clock_names(nodes: list[ast.AST]) -> dict[str, str]:
    """Each name (or ``self.x``) assigned in the scope from a clock reading or a duration."""
    assignments: list[tuple[ast.expr, ast.expr]] = []
    for node in nodes:
        if isinstance(node, ast.Assign):
            assignments.extend((target, node.value) for target in node.targets)
        elif isinstance(node, (ast.AnnAssign, ast.AugAssign)) and node.value is not None:
            assignments.append((node.target, node.value))
        elif (  # durations.append(now - start): the list holds durations
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in {"append", "add"}
            and len(node.args) == 1
        ):
            assignments.append((node.func.value, node.args[0]))
    names: dict[str, str] = {}
    changed = True
    while changed:  # to a fixed point: start = monotonic(); spent = monotonic() - start …
        changed = False
        for target, value in assignments:
            kind = _kind(value, names)
            name = _name_of(target)
            if kind is not None and name is not None and names.get(name) != DURATION:
                if names.get(name) != kind:
                    names[name] = kind
                    changed = True
    return names


def _compares_a_duration(test: ast.AST, names: dict[str, str]) -> bool:
    for node in ast.walk(test):
        if isinstance(node, ast.Compare):
            if any(_kind(side, names) == DURATION for side in [node.left, *node.comparators]):
                return True
    return False


def wall_clock_assertions(source: str) -> list[int]:
    """The line numbers of the assertions in ``source`` that bound a measured duration."""
    tree = ast.parse(source)
    scopes: list[ast.AST] = [tree]
    scopes += [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    lines = set()
    for scope in scopes:
        nodes = _scope_nodes(scope)
        names = _clock_names(nodes)
        for node in nodes:
            if isinstance(node, ast.Assert) and _compares_a_duration(node.test, names):
                lines.add(node.lineno)
            elif isinstance(node, ast.Call):
                func = node.func
                called = func.attr if isinstance(func, ast.Attribute) else _name_of(func)
                arguments = [*node.args, *(keyword.value for keyword in node.keywords)]
                if called in UNITTEST_COMPARISONS or called == "approx":
                    if any(_kind(argument, names) == DURATION for argument in arguments):
                        lines.add(node.lineno)
    return sorted(lines)


def _is_test_file(path: Path) -> bool:
    relative = path.relative_to(ROOT)
    parts = relative.parts
    if path.suffix != ".py" or "tests" not in parts:
        return False
    return relative.parts[:2] != ("tests", "bench")


def test_no_test_asserts_a_wall_clock_bound() -> None:
    found: dict[str, list[str]] = {}
    for path, text in text_files(excluding=THIS_FILE):
        if not _is_test_file(path):
            continue
        for line in wall_clock_assertions(text):
            name = str(path.relative_to(ROOT))
            found.setdefault(name, []).append(
                f"{name}:{line}: {text.splitlines()[line - 1].strip()}"
            )
    offenders = [
        bound
        for name, bounds in found.items()
        if len(bounds) > NOT_YET_REWRITTEN.get(name, 0)
        for bound in bounds
    ]
    assert not offenders, (
        "assert what the code does (the timeout it passes, the calls, a counter), not how long"
        " it took; a hang guard is a generous timeout, not an assert (docs/testing.md):\n"
        + "\n".join(offenders)
    )
    fewer = {
        name: len(found.get(name, []))
        for name, listed in NOT_YET_REWRITTEN.items()
        if len(found.get(name, [])) < listed
    }
    assert not fewer, f"bounds rewritten: lower these in NOT_YET_REWRITTEN to {fewer}"


def test_a_bound_on_a_measured_time_is_flagged() -> None:
    measured = (
        "import time\n"
        "def test_fast():\n"
        "    start = time.monotonic()\n"
        "    call()\n"
        "    elapsed = time.monotonic() - start\n"
        "    assert elapsed < 2.0\n"  # 6: through a name assigned from the clock
        "    assert time.perf_counter() - start <= 1\n"  # 7: directly
        "    assert result.took == pytest.approx(0.5, abs=0.1)\n"  # 8: a measurement's name
        "    self.assertLess(time.monotonic() - start, 3)\n"  # 9: unittest
        "    spent = time.monotonic() - start\n"
        "    total = spent * 2\n"
        "    assert total < 5\n"  # 12: through two names
        "    added = sorted(seconds - baseline for _, seconds in outage)\n"
        "    assert added[-1] < 1.0\n"  # 14: through a comprehension and an index
        "    assert max(seconds for seconds, _ in results) < 1.0\n"  # 15: a timed helper's
        "    durations.append(time.monotonic() - start)\n"
        "    assert max(durations) < 2.0\n"  # 17: through a list of them
    )
    assert wall_clock_assertions(measured) == [6, 7, 8, 9, 12, 14, 15, 17]


def test_a_polling_deadline_and_a_timeout_argument_are_not_flagged() -> None:
    waits = (
        "import time\n"
        "def wait_until(condition, timeout=10.0):\n"
        "    deadline = time.monotonic() + timeout\n"
        "    while time.monotonic() < deadline:\n"
        "        if condition():\n"
        "            return\n"
        "        time.sleep(0.05)\n"
        "    raise AssertionError('condition not met in time')\n"
        "def test_timeout_passed():\n"
        "    client = connect(socket_timeout=0.25)\n"
        "    assert fake.timeouts == [0.25]\n"
        "    worker.join(timeout=30)  # a hang guard\n"
        "    assert not worker.is_alive()\n"
        "    assert span.end_time_unix_nano >= span.start_time_unix_nano\n"
    )
    assert wall_clock_assertions(waits) == []
