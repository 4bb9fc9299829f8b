from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tools.base import ToolContext
from tools.environment import LocalEnvironment
from tools.registry import ToolRegistry
from tools.testing import frameworks as fw
from tools.testing.run_tests import RunTests, RunTestsParams, tail_heavy, verdict

PASSING = "def test_adds():\n    assert 1 + 1 == 2\n"
FAILING = "def test_subtracts():\n    assert 2 - 1 == 0, 'subtraction is broken'\n"
FIXED = "def test_subtracts():\n    assert 2 - 1 == 1\n"


def use_this_interpreter(root: Path) -> None:
    """Give the temp repo a `.venv/bin/python` that runs the interpreter running these tests, so
    pytest is importable whatever `python` is on PATH (and the venv preference is exercised)."""
    bin_dir = root / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    wrapper = bin_dir / "python"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    wrapper.chmod(0o755)


@pytest.fixture
def registry() -> ToolRegistry:
    return ToolRegistry([RunTests()])


def make_ctx(root: Path) -> ToolContext:
    return ToolContext(root=root, env=LocalEnvironment(root))


@pytest.fixture
def pytest_repo(tmp_path: Path) -> Path:
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    tests = tmp_path / "tests"
    tests.mkdir()
    (tests / "test_math.py").write_text(PASSING + "\n\n" + FAILING)
    use_this_interpreter(tmp_path)
    return tmp_path


async def run(registry: ToolRegistry, ctx: ToolContext, **args):
    return await registry.execute("run_tests", json.dumps(args), ctx)


# --------------------------------------------------------------------------- end to end


async def test_pytest_repo_with_a_failure(registry, pytest_repo):
    result = await run(registry, make_ctx(pytest_repo))
    assert result.is_error is False
    first = result.output.splitlines()[0]
    assert first.startswith("FAILED: 1 failed, 1 passed (pytest, ")
    assert "Failing tests:\n  tests/test_math.py::test_subtracts" in result.output
    assert "subtraction is broken" in result.output  # the tail of the output is shown
    assert result.output.rstrip().endswith(
        "Command: .venv/bin/python -m pytest -q -rfE --color=no -p no:cacheprovider -p no:langsmith_plugin"
    )
    data = result.data
    assert (data["framework"], data["passed"], data["failed"], data["errors"]) == ("pytest", 1, 1, 0)
    assert data["failures"] == ["tests/test_math.py::test_subtracts"]
    assert data["exit_code"] == 1
    assert not (pytest_repo / ".pytest_cache").exists()


async def test_pytest_repo_after_the_fix(registry, pytest_repo):
    (pytest_repo / "tests" / "test_math.py").write_text(PASSING + "\n\n" + FIXED)
    result = await run(registry, make_ctx(pytest_repo))
    assert result.is_error is False
    assert result.output.startswith("PASSED: 2 passed (pytest, ")
    assert "Failing tests" not in result.output
    assert result.data["passed"] == 2 and result.data["failed"] == 0
    assert result.data["exit_code"] == 0


async def test_target_node_id(registry, pytest_repo):
    result = await run(registry, make_ctx(pytest_repo), target="tests/test_math.py::test_adds")
    assert result.output.startswith("PASSED: 1 passed (pytest, ")
    assert result.data["command"].endswith(" tests/test_math.py::test_adds")
    assert result.data["passed"] == 1


async def test_target_that_does_not_exist(registry, pytest_repo):
    result = await run(registry, make_ctx(pytest_repo), target="tests/test_nope.py")
    assert result.is_error is False
    assert result.output.startswith("ERROR: no tests ran and the test command exited 4")
    assert "file or directory not found" in result.output


async def test_collection_error_is_reported(registry, pytest_repo):
    (pytest_repo / "tests" / "test_broken.py").write_text("import missing_module_xyz\n")
    result = await run(registry, make_ctx(pytest_repo))
    assert result.output.startswith("FAILED: 1 error (pytest, ")
    assert "tests/test_broken.py" in result.data["failures"]
    assert result.data["errors"] == 1


async def test_unittest_style_repo_runs_under_pytest(registry, tmp_path):
    (tmp_path / "calc.py").write_text("def double(x):\n    return x * 2\n")
    tests = tmp_path / "tests"
    tests.mkdir()
    (tests / "test_calc.py").write_text(
        "import unittest\n"
        "import calc\n\n"
        "class TestCalc(unittest.TestCase):\n"
        "    def test_double(self):\n"
        "        self.assertEqual(calc.double(2), 4)\n\n"
        "    def test_wrong(self):\n"
        "        self.assertEqual(calc.double(2), 5)\n"
    )
    use_this_interpreter(tmp_path)
    assert fw.detect_framework(tmp_path) == "pytest"  # test_*.py files win; pytest runs unittest tests
    (tmp_path / "conftest.py").write_text("")  # puts the repo root on sys.path for `import calc`
    result = await run(registry, make_ctx(tmp_path))
    assert result.output.startswith("FAILED: 1 failed, 1 passed (pytest, ")
    assert result.data["failures"] == ["tests/test_calc.py::TestCalc::test_wrong"]


async def test_plain_unittest_repo(registry, tmp_path):
    # `tests.py` is found by unittest's default pattern but is not a pytest-style test file.
    (tmp_path / "calc.py").write_text("def double(x):\n    return x * 2\n")
    tests = tmp_path / "tests"
    tests.mkdir()
    (tests / "tests.py").write_text(
        "import unittest\n\n"
        "class TestCalc(unittest.TestCase):\n"
        "    def test_ok(self):\n"
        "        self.assertTrue(True)\n\n"
        "    def test_bad(self):\n"
        "        self.assertEqual(1, 2)\n"
    )
    use_this_interpreter(tmp_path)
    assert fw.detect_framework(tmp_path) == "unittest"
    result = await run(registry, make_ctx(tmp_path))
    assert result.data["command"] == ".venv/bin/python -m unittest discover -s tests"
    assert result.output.startswith("FAILED: 1 failed, 1 passed (unittest, ")
    assert result.data["failures"] == ["tests.TestCalc.test_bad"]


async def test_configured_test_command(registry, tmp_path):
    (tmp_path / "check.sh").write_text('echo "checking ${1:-everything}"\nexit 0\n')
    ctx = make_ctx(tmp_path)
    ctx.settings["test_command"] = "bash check.sh"
    result = await run(registry, ctx, target="unit")
    assert result.is_error is False
    assert result.data["framework"] == "custom"
    assert result.data["command"] == "bash check.sh unit"
    assert "checking unit" in result.output
    assert result.output.startswith("PASSED: the test command exited 0")


async def test_configured_command_output_is_parsed(registry, tmp_path):
    (tmp_path / "check.sh").write_text(
        "echo 'test result: FAILED. 3 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out'\nexit 101\n"
    )
    ctx = make_ctx(tmp_path)
    ctx.settings["test_command"] = "bash check.sh"
    result = await run(registry, ctx)
    assert result.output.startswith("FAILED: 1 failed, 3 passed (custom, cargo, ")
    assert (result.data["passed"], result.data["failed"], result.data["exit_code"]) == (3, 1, 101)


async def test_configured_command_failing_without_summary(registry, tmp_path):
    ctx = make_ctx(tmp_path)
    ctx.settings["test_command"] = "echo something went wrong; exit 4"
    result = await run(registry, ctx)
    assert result.is_error is False
    assert result.output.startswith("ERROR: the test command exited 4 and no test summary was found")
    assert "something went wrong" in result.output


async def test_no_framework_detected(registry, tmp_path):
    (tmp_path / "notes.txt").write_text("nothing to test\n")
    result = await run(registry, make_ctx(tmp_path))
    assert result.is_error is True
    assert "No test framework was detected" in result.output
    assert "execute_bash" in result.output and "test_command" in result.output


async def test_timeout(registry, tmp_path):
    (tmp_path / "test_slow.py").write_text("import time\n\ndef test_slow():\n    time.sleep(60)\n")
    use_this_interpreter(tmp_path)
    result = await run(registry, make_ctx(tmp_path), timeout=2)
    assert result.is_error is True
    assert result.output.startswith("TIMEOUT: the test run did not finish within 2 s")
    assert result.data["timed_out"] is True and result.data["exit_code"] is None
    assert "Command: .venv/bin/python -m pytest" in result.output


async def test_timeout_default_from_settings(tmp_path):
    ctx = make_ctx(tmp_path)
    ctx.settings["test_command"] = "sleep 30"
    ctx.settings["test_timeout"] = 1
    result = await RunTests().run(RunTestsParams(), ctx)
    assert result.is_error and result.data["timed_out"]
    assert "within 1 s" in result.output


async def test_unbalanced_quote_in_target(registry, pytest_repo):
    result = await run(registry, make_ctx(pytest_repo), target="tests/'oops")
    assert result.is_error
    assert "could not be parsed" in result.output


# --------------------------------------------------------------------------- detection


def test_detect_pytest_from_config_files(tmp_path):
    assert fw.detect_framework(tmp_path) is None
    (tmp_path / "pyproject.toml").write_text("[tool.pytest.ini_options]\naddopts = '-q'\n")
    assert fw.detect_framework(tmp_path) == "pytest"


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("pytest.ini", "[pytest]\n"),
        ("conftest.py", ""),
        ("setup.cfg", "[metadata]\nname = x\n\n[tool:pytest]\ntestpaths = tests\n"),
        ("tox.ini", "[tox]\nenvlist = py311\n\n[pytest]\naddopts = -q\n"),
        ("pkg/sub/thing_test.py", ""),
    ],
)
def test_detect_pytest_variants(tmp_path, name, content):
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content)
    assert fw.detect_framework(tmp_path) == "pytest"


def test_pyproject_without_pytest_section(tmp_path):
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    (tmp_path / "setup.cfg").write_text("[metadata]\nname = x\n")
    assert fw.detect_framework(tmp_path) is None


def test_test_files_in_skipped_directories_are_ignored(tmp_path):
    for d in ("node_modules/pkg", ".venv/lib", ".git/hooks"):
        (tmp_path / d).mkdir(parents=True)
        (tmp_path / d / "test_x.py").write_text("")
    assert fw.detect_framework(tmp_path) is None


def test_detect_npm(tmp_path):
    package = tmp_path / "package.json"
    package.write_text(json.dumps({"scripts": {"test": 'echo "Error: no test specified" && exit 1'}}))
    assert fw.detect_framework(tmp_path) is None
    package.write_text(json.dumps({"scripts": {"test": "jest"}}))
    assert fw.detect_framework(tmp_path) == "npm"
    assert fw.build_command("npm", tmp_path) == "npm test --silent"
    assert fw.build_command("npm", tmp_path, "src/a.test.js") == "npm test --silent -- src/a.test.js"


def test_detect_go_cargo_unittest_and_order(tmp_path):
    (tmp_path / "Cargo.toml").write_text("[package]\nname = 'x'\n")
    assert fw.detect_framework(tmp_path) == "cargo"
    (tmp_path / "go.mod").write_text("module example.com/x\n")
    assert fw.detect_framework(tmp_path) == "go"
    (tmp_path / "package.json").write_text(json.dumps({"scripts": {"test": "node --test"}}))
    assert fw.detect_framework(tmp_path) == "npm"
    (tmp_path / "test_a.py").write_text("")
    assert fw.detect_framework(tmp_path) == "pytest"

    other = tmp_path / "other"
    other.mkdir()
    (other / "test").mkdir()
    (other / "test" / "checks.py").write_text("")
    assert fw.detect_framework(other) == "unittest"
    assert fw.build_command("unittest", other) == "python -m unittest discover -s test"
    (other / "test" / "__init__.py").write_text("")
    assert fw.build_command("unittest", other) == "python -m unittest discover -s test -t ."
    assert fw.build_command("unittest", other, "test/checks.py") == "python -m unittest test/checks.py"


def test_build_commands(tmp_path):
    assert fw.build_command("go", tmp_path) == "go test ./..."
    assert fw.build_command("go", tmp_path, "./pkg/...") == "go test ./pkg/..."
    assert fw.build_command("cargo", tmp_path) == "cargo test"
    assert fw.build_command("cargo", tmp_path, "it_works") == "cargo test it_works"
    assert (
        fw.build_command("pytest", tmp_path)
        == "python -m pytest -q -rfE --color=no -p no:cacheprovider -p no:langsmith_plugin"
    )
    # Brackets are quoted so the shell does not glob them; shell-style quotes group words.
    assert fw.build_command("pytest", tmp_path, "tests/t.py::test_x[1]").endswith(" 'tests/t.py::test_x[1]'")
    assert fw.build_command("pytest", tmp_path, "'tests/t.py::test_x[a b]'").endswith(
        " 'tests/t.py::test_x[a b]'"
    )
    assert fw.build_command("pytest", tmp_path, "tests/a.py tests/b.py").endswith(" tests/a.py tests/b.py")


def test_python_interpreter_prefers_repo_venv(tmp_path):
    assert fw.python_interpreter(tmp_path) == "python"
    (tmp_path / "venv" / "bin").mkdir(parents=True)
    (tmp_path / "venv" / "bin" / "python").write_text("")
    assert fw.python_interpreter(tmp_path) == "venv/bin/python"
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    (tmp_path / ".venv" / "bin" / "python").write_text("")
    assert fw.python_interpreter(tmp_path) == ".venv/bin/python"


# --------------------------------------------------------------------------- parsers

PYTEST_OUTPUT = """\
..F.sE                                                                   [100%]
==================================== ERRORS ====================================
__________________________ ERROR at setup of test_err __________________________
=================================== FAILURES ===================================
___________________________________ test_bad ___________________________________
E       AssertionError: nope
=========================== short test summary info ============================
FAILED test_a.py::test_bad - AssertionError: nope
FAILED test_a.py::test_p[a b] - AssertionError: assert 'a b' == 'c'
ERROR test_a.py::test_err - RuntimeError: x
2 failed, 2 passed, 1 skipped, 1 error in 0.78s
"""


def test_parse_pytest():
    s = fw.parse_pytest(PYTEST_OUTPUT)
    assert s.found
    assert (s.passed, s.failed, s.errors, s.skipped) == (2, 2, 1, 1)
    assert s.failures == ["test_a.py::test_bad", "test_a.py::test_p[a b]", "test_a.py::test_err"]
    assert s.counts() == "2 failed, 2 passed, 1 skipped, 1 error"


def test_parse_pytest_banner_and_no_tests():
    s = fw.parse_pytest("===== 3 passed, 1 warning in 65.02s (0:01:05) =====\n")
    assert s.found and s.passed == 3 and s.failed == 0
    empty = fw.parse_pytest("\nno tests ran in 0.65s\n")
    assert empty.found and empty.no_tests
    assert fw.parse_pytest("random text\n").found is False


UNITTEST_OUTPUT = """\
EF.sx
======================================================================
ERROR: test_err (test_u.TestA.test_err)
----------------------------------------------------------------------
Traceback (most recent call last):
  File "/tmp/ut/test_u.py", line 5, in test_err
ValueError: boom

======================================================================
FAIL: test_fail (test_u.TestA.test_fail)
----------------------------------------------------------------------
Traceback (most recent call last):
  File "/tmp/ut/test_u.py", line 4, in test_fail
AssertionError: 1 != 2

----------------------------------------------------------------------
Ran 5 tests in 0.001s

FAILED (failures=1, errors=1, skipped=1, expected failures=1)
"""


def test_parse_unittest():
    s = fw.parse_unittest(UNITTEST_OUTPUT)
    assert s.found
    assert (s.passed, s.failed, s.errors, s.skipped) == (1, 1, 1, 2)
    assert s.failures == ["test_u.TestA.test_err", "test_u.TestA.test_fail"]
    # Python < 3.11 prints the class without the method name.
    old = fw.parse_unittest("FAIL: test_x (mod.TestB)\n---\nRan 2 tests in 0.01s\n\nFAILED (failures=1)\n")
    assert old.failures == ["mod.TestB.test_x"] and old.passed == 1
    ok = fw.parse_unittest("..\n----\nRan 2 tests in 0.000s\n\nOK (skipped=1)\n")
    assert (ok.passed, ok.skipped, ok.failed) == (1, 1, 0)
    assert fw.parse_output("unittest", UNITTEST_OUTPUT).runner == "unittest"


GO_OUTPUT = """\
--- FAIL: TestAdd (0.00s)
    add_test.go:9: Add(2, 2) = 5; want 4
--- FAIL: TestTable (0.00s)
    --- FAIL: TestTable/negative (0.00s)
        table_test.go:20: got -1
FAIL
FAIL\texample.com/calc\t0.002s
ok  \texample.com/calc/util\t0.001s
?   \texample.com/calc/cmd\t[no test files]
# example.com/calc/broken [example.com/calc/broken.test]
broken/x_test.go:3:2: undefined: Foo
FAIL\texample.com/calc/broken [build failed]
FAIL
"""


def test_parse_go():
    s = fw.parse_go(GO_OUTPUT)
    assert s.found
    assert s.failed == 2 and s.errors == 1
    assert s.failures == ["TestAdd", "TestTable", "TestTable/negative"]
    assert (s.packages_ok, s.packages_failed) == (1, 2)
    assert s.counts() == "2 failed, 1 error, packages: 1 ok, 2 failed"
    ok = fw.parse_go("ok  \texample.com/calc\t0.002s\nok  \texample.com/calc/util\t(cached)\n")
    assert ok.found and not ok.no_tests and ok.failed == 0
    assert verdict(ok, 0) == ("PASSED", "packages: 2 ok, 0 failed")


CARGO_OUTPUT = """\
   Compiling ct v0.1.0 (/tmp/ct)
    Finished `test` profile [unoptimized + debuginfo] target(s) in 1.10s
     Running unittests src/lib.rs (target/debug/deps/ct-c4066ebb79ee0019)

running 3 tests
test tests::ignored ... ignored
test tests::it_works ... ok
test tests::it_fails ... FAILED

failures:

---- tests::it_fails stdout ----

thread 'tests::it_fails' (5474) panicked at src/lib.rs:6:29:
assertion `left == right` failed
  left: 4
 right: 5

failures:
    tests::it_fails

test result: FAILED. 1 passed; 1 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.15s

     Running tests/integration.rs (target/debug/deps/integration-0123)

running 2 tests
test adds ... ok
test subtracts ... ok

test result: ok. 2 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s

error: test failed, to rerun pass `--lib`
"""


def test_parse_cargo():
    s = fw.parse_cargo(CARGO_OUTPUT)
    assert s.found
    assert (s.passed, s.failed, s.skipped) == (3, 1, 1)
    assert s.failures == ["tests::it_fails"]
    compile_error = fw.parse_cargo("error[E0425]: cannot find value `x`\nerror: could not compile `ct`\n")
    assert not compile_error.found


JEST_OUTPUT = """\
FAIL src/sum.test.js
  sum
    ✓ adds 1 + 2 to equal 3 (3 ms)
    ✕ subtracts (2 ms)
    ○ skipped later

  ● sum › subtracts

    expect(received).toBe(expected) // Object.is equality

    Expected: 0
    Received: 2

PASS src/other.test.js

Test Suites: 1 failed, 1 passed, 2 total
Tests:       1 failed, 1 skipped, 3 passed, 5 total
Snapshots:   0 total
Time:        0.512 s, estimated 1 s
Ran all test suites.
"""


def test_parse_jest():
    s = fw.parse_jest(JEST_OUTPUT)
    assert s.found and s.runner == "jest"
    assert (s.passed, s.failed, s.skipped) == (3, 1, 1)
    assert s.failures == ["sum › subtracts"]
    only_cross = fw.parse_jest("  ✕ subtracts (2 ms)\nTests:       1 failed, 1 total\n")
    assert only_cross.failures == ["subtracts"]
    parsed = fw.parse_output("npm", JEST_OUTPUT)
    assert parsed.runner == "jest" and parsed.failed == 1


VITEST_OUTPUT = """\
 ❯ src/sum.test.ts (2 tests | 1 failed) 4ms
   × sum > subtracts 3ms
     → expected 2 to be +0 // Object.is equality

⎯⎯⎯⎯⎯⎯⎯ Failed Tests 1 ⎯⎯⎯⎯⎯⎯⎯

 FAIL  src/sum.test.ts > sum > subtracts
AssertionError: expected 2 to be +0 // Object.is equality

 Test Files  1 failed (1)
      Tests  1 failed | 1 passed (2)
   Start at  10:00:00
   Duration  300ms
"""


def test_parse_vitest():
    s = fw.parse_jest(VITEST_OUTPUT)
    assert s.found and s.runner == "vitest"
    assert (s.passed, s.failed) == (1, 1)
    assert s.failures == ["src/sum.test.ts > sum > subtracts"]


NODE_TAP_OUTPUT = """\
TAP version 13
# Subtest: adds
ok 1 - adds
  ---
  duration_ms: 1.265854
  ...
# Subtest: subtracts
not ok 2 - subtracts
  ---
  duration_ms: 1.419171
  failureType: 'testCodeFailure'
  ...
# Subtest: skipped
ok 3 - skipped # SKIP
1..3
# tests 3
# suites 0
# pass 1
# fail 1
# cancelled 0
# skipped 1
# todo 0
# duration_ms 120.343241
"""

NODE_SPEC_OUTPUT = """\
✔ adds (0.8ms)
✖ subtracts (0.9ms)
﹣ skipped (0.1ms) # SKIP
ℹ tests 3
ℹ suites 0
ℹ pass 1
ℹ fail 1
ℹ cancelled 0
ℹ skipped 1
ℹ todo 0
ℹ duration_ms 110.741081

✖ failing tests:

test at a.test.mjs:4:1
✖ subtracts (0.996092ms)
  AssertionError [ERR_ASSERTION]: Expected values to be strictly equal:
"""


@pytest.mark.parametrize("output", [NODE_TAP_OUTPUT, NODE_SPEC_OUTPUT])
def test_parse_node(output):
    s = fw.parse_node(output)
    assert s.found
    assert (s.passed, s.failed, s.skipped, s.errors) == (1, 1, 1, 0)
    assert s.failures == ["subtracts"]
    assert fw.parse_output("npm", output).runner == "node"


def test_parse_output_falls_back_across_runners():
    assert fw.parse_output("custom", CARGO_OUTPUT).runner == "cargo"
    assert fw.parse_output("custom", GO_OUTPUT).runner == "go"
    assert fw.parse_output("custom", UNITTEST_OUTPUT).runner == "unittest"
    assert fw.parse_output("pytest", PYTEST_OUTPUT).runner == "pytest"
    nothing = fw.parse_output("custom", "hello\n")
    assert not nothing.found and nothing.failures == []


def test_verdicts():
    failed = fw.parse_pytest(PYTEST_OUTPUT)
    assert verdict(failed, 1) == ("FAILED", "2 failed, 2 passed, 1 skipped, 1 error")
    passed = fw.parse_pytest("4 passed in 0.1s\n")
    assert verdict(passed, 0) == ("PASSED", "4 passed")
    assert verdict(passed, 2)[0] == "FAILED"
    assert verdict(fw.parse_pytest("no tests ran in 0.1s\n"), 5)[0] == "NO TESTS"
    unknown = fw.TestSummary("custom")
    assert verdict(unknown, 4) == ("ERROR", "the test command exited 4 and no test summary was found")


def test_tail_heavy_keeps_mostly_the_end():
    text = "".join(f"line {i}\n" for i in range(5000))
    out = tail_heavy(text, 8000)
    assert len(out) <= 8000
    head, _, tail = out.partition("characters omitted")
    assert out.startswith("line 0\n") and out.endswith("line 4999\n")
    assert len(tail) > 4 * len(head)
