"""Test framework detection, command building and output parsing: pure functions, no processes.

`detect_framework` looks at the files of a repository; `build_command` makes the shell command;
the `parse_*` functions read a runner's output into a :class:`TestSummary`.
"""

from __future__ import annotations

import configparser
import json
import os
import re
import shlex
import tomllib
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

FRAMEWORKS = ("pytest", "npm", "go", "cargo", "unittest")

# Directories never worth walking when looking for test files.
SKIP_DIRS = frozenset(
    {
        "node_modules",
        "venv",
        "env",
        "site-packages",
        "dist",
        "build",
        "target",
        "vendor",
        "third_party",
        "__pycache__",
    }
)
NPM_PLACEHOLDER = "no test specified"


# --------------------------------------------------------------------------- detection


def iter_files(root: Path, max_depth: int = 6, max_entries: int = 20000) -> Iterator[Path]:
    """Walk `root` breadth-first, cheaply: hidden directories (.git, .venv, .tox...), dependency
    and build directories are skipped, and the walk stops after `max_entries` entries."""
    seen = 0
    queue: deque[tuple[Path, int]] = deque([(root, 0)])
    while queue:
        directory, depth = queue.popleft()
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError:
            continue
        for entry in entries:
            seen += 1
            if seen > max_entries:
                return
            try:
                if entry.is_dir(follow_symlinks=False):
                    if depth < max_depth and not entry.name.startswith(".") and entry.name not in SKIP_DIRS:
                        queue.append((Path(entry.path), depth + 1))
                elif entry.is_file():
                    yield Path(entry.path)
            except OSError:
                continue


def is_python_test_file(name: str) -> bool:
    return name.endswith(".py") and (name.startswith("test_") or name.endswith("_test.py"))


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def _ini_has_section(path: Path, section: str) -> bool:
    if not path.is_file():
        return False
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read_string(_read(path))
    except configparser.Error:
        return f"[{section}]" in _read(path)
    return parser.has_section(section)


def has_pytest_config(root: Path) -> bool:
    if (root / "pytest.ini").is_file() or (root / "conftest.py").is_file():
        return True
    pyproject = root / "pyproject.toml"
    if pyproject.is_file():
        try:
            tool = tomllib.loads(_read(pyproject)).get("tool", {})
        except tomllib.TOMLDecodeError:
            tool = {}
            if "[tool.pytest" in _read(pyproject):
                return True
        pytest_conf = tool.get("pytest") if isinstance(tool, dict) else None
        if isinstance(pytest_conf, dict):  # [tool.pytest.ini_options] or pytest 9's [tool.pytest]
            return True
    return _ini_has_section(root / "setup.cfg", "tool:pytest") or _ini_has_section(root / "tox.ini", "pytest")


def npm_test_script(root: Path) -> str | None:
    """The `scripts.test` of package.json, unless it is missing or npm init's placeholder."""
    package = root / "package.json"
    if not package.is_file():
        return None
    try:
        data = json.loads(_read(package))
    except ValueError:
        return None
    scripts = data.get("scripts") if isinstance(data, dict) else None
    test = scripts.get("test") if isinstance(scripts, dict) else None
    if not isinstance(test, str) or not test.strip() or NPM_PLACEHOLDER in test:
        return None
    return test


def detect_framework(root: Path) -> str | None:
    """pytest, npm, go, cargo or unittest, in that order of preference; None when nothing fits."""
    root = Path(root)
    files: list[Path] | None = None

    def walk() -> list[Path]:
        nonlocal files
        if files is None:
            files = list(iter_files(root))
        return files

    if has_pytest_config(root) or any(is_python_test_file(p.name) for p in walk()):
        return "pytest"
    if npm_test_script(root) is not None:
        return "npm"
    if (root / "go.mod").is_file():
        return "go"
    if (root / "Cargo.toml").is_file():
        return "cargo"
    has_test_dir = (root / "tests").is_dir() or (root / "test").is_dir()
    if has_test_dir and any(p.suffix == ".py" for p in walk()):
        return "unittest"
    return None


def python_interpreter(root: Path) -> str:
    """The repository's own virtualenv if it has one, else whatever `python` the PATH gives."""
    for candidate in (".venv/bin/python", "venv/bin/python"):
        if (Path(root) / candidate).exists():
            return candidate
    return "python"


def quote_target(target: str | None) -> str:
    """Split the target like a shell would (so several files can be given) and re-quote each part,
    so node ids with brackets or spaces reach the runner intact."""
    if not target or not target.strip():
        return ""
    return " ".join(shlex.quote(part) for part in shlex.split(target))


def build_command(framework: str, root: Path, target: str | None = None) -> str:
    quoted = quote_target(target)
    if framework == "pytest":
        # langsmith (a langgraph dependency) registers a pytest plugin costing ~1.2 s per start when
        # the repo's tests run on Luban's own interpreter; blocking an absent plugin is a no-op.
        cmd = f"{python_interpreter(root)} -m pytest -q -rfE --color=no -p no:cacheprovider -p no:langsmith_plugin"
        return f"{cmd} {quoted}" if quoted else cmd
    if framework == "unittest":
        py = python_interpreter(root)
        if quoted:
            return f"{py} -m unittest {quoted}"
        for name in ("tests", "test"):
            directory = Path(root) / name
            if directory.is_dir():
                if (directory / "__init__.py").is_file():
                    return f"{py} -m unittest discover -s {name} -t ."
                return f"{py} -m unittest discover -s {name}"
        return f"{py} -m unittest discover"
    if framework == "npm":
        return f"npm test --silent -- {quoted}" if quoted else "npm test --silent"
    if framework == "go":
        return f"go test {quoted or './...'}"
    if framework == "cargo":
        return f"cargo test {quoted}" if quoted else "cargo test"
    raise ValueError(f"unknown framework {framework!r}")


# --------------------------------------------------------------------------- parsing


@dataclass
class TestSummary:
    __test__ = False  # not a pytest test class

    runner: str
    found: bool = False  # a summary line of this runner was recognised
    passed: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0
    failures: list[str] = field(default_factory=list)
    # Go reports packages, not tests, unless run with -v: counted here and shown as a note.
    packages_ok: int = 0
    packages_failed: int = 0

    @property
    def total(self) -> int:
        return self.passed + self.failed + self.errors + self.skipped

    @property
    def no_tests(self) -> bool:
        return self.total == 0 and self.packages_ok + self.packages_failed == 0

    def counts(self) -> str:
        parts = []
        if self.failed:
            parts.append(f"{self.failed} failed")
        if self.passed:
            parts.append(f"{self.passed} passed")
        if self.skipped:
            parts.append(f"{self.skipped} skipped")
        if self.errors:
            parts.append(f"{self.errors} error{'s' if self.errors != 1 else ''}")
        if self.packages_ok or self.packages_failed:
            parts.append(f"packages: {self.packages_ok} ok, {self.packages_failed} failed")
        return ", ".join(parts) or "no tests ran"


def _add_failure(summary: TestSummary, name: str) -> None:
    name = name.strip()
    if name and name not in summary.failures:
        summary.failures.append(name)


PYTEST_SUMMARY = re.compile(
    r"^=*\s*(?P<body>(?:\d+ [a-z]+(?:, )?)+|no tests ran)\s+in\s+[\d.]+s\b.*?=*\s*$", re.MULTILINE
)
PYTEST_COUNT = re.compile(r"(\d+) ([a-z]+)")
PYTEST_FAILURE = re.compile(r"^(?:FAILED|ERROR) (?!\()(\S.*?)(?: - .*)?$", re.MULTILINE)


def parse_pytest(output: str) -> TestSummary:
    s = TestSummary("pytest")
    matches = list(PYTEST_SUMMARY.finditer(output))
    if matches:
        s.found = True
        for number, word in PYTEST_COUNT.findall(matches[-1].group("body")):
            n = int(number)
            if word in ("passed", "xpassed"):
                s.passed += n
            elif word == "failed":
                s.failed += n
            elif word in ("error", "errors"):
                s.errors += n
            elif word in ("skipped", "xfailed"):
                s.skipped += n
    for m in PYTEST_FAILURE.finditer(output):
        _add_failure(s, m.group(1))
    return s


UNITTEST_RAN = re.compile(r"^Ran (\d+) tests? in [\d.]+s", re.MULTILINE)
UNITTEST_RESULT = re.compile(r"^(OK|FAILED)(?: \((.*)\))?\s*$", re.MULTILINE)
UNITTEST_FAILURE = re.compile(r"^(?:FAIL|ERROR): (\w+) \(([\w.]+)\)", re.MULTILINE)


def parse_unittest(output: str) -> TestSummary:
    s = TestSummary("unittest")
    ran = list(UNITTEST_RAN.finditer(output))
    if ran:
        s.found = True
        total = int(ran[-1].group(1))
        result = None
        for m in UNITTEST_RESULT.finditer(output, ran[-1].end()):
            result = m
            break
        details: dict[str, int] = {}
        if result and result.group(2):
            for part in result.group(2).split(","):
                key, _, value = part.strip().partition("=")
                if value.strip().isdigit():
                    details[key.strip()] = int(value)
        s.failed = details.get("failures", 0) + details.get("unexpected successes", 0)
        s.errors = details.get("errors", 0)
        s.skipped = details.get("skipped", 0) + details.get("expected failures", 0)
        s.passed = max(total - s.failed - s.errors - s.skipped, 0)
    for m in UNITTEST_FAILURE.finditer(output):
        name, where = m.group(1), m.group(2)
        _add_failure(s, where if where.endswith("." + name) else f"{where}.{name}")
    return s


GO_TEST = re.compile(r"^(\s*)--- (FAIL|PASS|SKIP): (\S+)", re.MULTILINE)
GO_PACKAGE = re.compile(r"^(ok|FAIL)\s+(\S+)(.*)$", re.MULTILINE)


def parse_go(output: str) -> TestSummary:
    s = TestSummary("go")
    for m in GO_PACKAGE.finditer(output):
        s.found = True
        if m.group(1) == "ok":
            s.packages_ok += 1
        else:
            s.packages_failed += 1
            if "[build failed]" in m.group(3) or "[setup failed]" in m.group(3):
                s.errors += 1
    for m in GO_TEST.finditer(output):
        indent, status, name = m.groups()
        top = not indent
        if status == "FAIL":
            _add_failure(s, name)
            s.failed += int(top)
        elif status == "PASS":
            s.passed += int(top)
        else:
            s.skipped += int(top)
    return s


CARGO_RESULT = re.compile(
    r"^test result: (?:ok|FAILED)\. (\d+) passed; (\d+) failed; (\d+) ignored; (\d+) measured",
    re.MULTILINE,
)
CARGO_FAILURE = re.compile(r"^(?:---- (\S+) stdout ----|test (\S+) \.\.\. FAILED)", re.MULTILINE)


def parse_cargo(output: str) -> TestSummary:
    s = TestSummary("cargo")
    for m in CARGO_RESULT.finditer(output):  # one per test binary (unit, integration, doc tests)
        s.found = True
        s.passed += int(m.group(1))
        s.failed += int(m.group(2))
        s.skipped += int(m.group(3))
    for m in CARGO_FAILURE.finditer(output):
        _add_failure(s, m.group(1) or m.group(2))
    return s


JEST_TESTS = re.compile(r"^Tests:\s+(.*\d+ total.*)$", re.MULTILINE)
VITEST_TESTS = re.compile(r"^\s*Tests\s+(\d+ [a-z]+.*?)\s+\((\d+)\)\s*$", re.MULTILINE)
JS_COUNT = re.compile(r"(\d+) (failed|passed|skipped|todo|pending)")
JS_CROSS = re.compile(r"^\s*[✕×✗] (.+?)(?: \(\d+(?:\.\d+)? ?m?s\)| \d+(?:\.\d+)? ?m?s)?\s*$", re.MULTILINE)
JEST_BULLET = re.compile(r"^\s*● (.+ › .+?)\s*$", re.MULTILINE)
JEST_SUITE_FAILED = re.compile(r"^\s*● Test suite failed to run", re.MULTILINE)
VITEST_FAIL = re.compile(r"^\s*FAIL\s+(\S+ > .+?)\s*$", re.MULTILINE)


def _js_counts(s: TestSummary, body: str) -> None:
    for number, word in JS_COUNT.findall(body):
        n = int(number)
        if word == "failed":
            s.failed += n
        elif word == "passed":
            s.passed += n
        else:
            s.skipped += n


def parse_jest(output: str) -> TestSummary:
    """Jest ("Tests: 1 failed, 3 passed, 4 total") and vitest ("Tests  1 failed | 3 passed (4)")."""
    jest = list(JEST_TESTS.finditer(output))
    vitest = list(VITEST_TESTS.finditer(output))
    s = TestSummary("jest" if jest or not vitest else "vitest")
    if jest:
        s.found = True
        _js_counts(s, jest[-1].group(1))
    elif vitest:
        s.found = True
        _js_counts(s, vitest[-1].group(1))
    s.errors += len(JEST_SUITE_FAILED.findall(output))
    names = [m.group(1) for m in JEST_BULLET.finditer(output)] or [
        m.group(1) for m in VITEST_FAIL.finditer(output)
    ]
    names = names or [m.group(1) for m in JS_CROSS.finditer(output)]
    for name in names:
        _add_failure(s, name)
    return s


NODE_COUNT = re.compile(r"^(?:#|ℹ) (tests|pass|fail|cancelled|skipped|todo) (\d+)\s*$", re.MULTILINE)
NODE_TAP_FAILURE = re.compile(r"^\s*not ok \d+ - (.+?)(?:\s+#.*)?$", re.MULTILINE)
NODE_SPEC_FAILURE = re.compile(r"^\s*✖ (.+?)(?: \([\d.]+m?s\))?\s*$", re.MULTILINE)


def parse_node(output: str) -> TestSummary:
    """node's built-in test runner, TAP ("# pass 3") or spec ("ℹ pass 3") reporter."""
    s = TestSummary("node")
    counts: dict[str, int] = {}
    for word, number in NODE_COUNT.findall(output):
        counts[word] = int(number)  # the last report wins
    if "pass" in counts or "fail" in counts:
        s.found = True
        s.passed = counts.get("pass", 0)
        s.failed = counts.get("fail", 0)
        s.errors = counts.get("cancelled", 0)
        s.skipped = counts.get("skipped", 0) + counts.get("todo", 0)
    for m in NODE_TAP_FAILURE.finditer(output):
        _add_failure(s, m.group(1))
    for m in NODE_SPEC_FAILURE.finditer(output):
        if m.group(1).rstrip(":") != "failing tests":
            _add_failure(s, m.group(1))
    return s


MOCHA_COUNT = re.compile(r"^\s*(\d+) (passing|failing|pending)\b", re.MULTILINE)


def parse_mocha(output: str) -> TestSummary:
    s = TestSummary("mocha")
    for number, word in MOCHA_COUNT.findall(output):
        s.found = True
        n = int(number)
        if word == "passing":
            s.passed = n
        elif word == "failing":
            s.failed = n
        else:
            s.skipped = n
    return s


PARSERS: dict[str, Callable[[str], TestSummary]] = {
    "pytest": parse_pytest,
    "unittest": parse_unittest,
    "go": parse_go,
    "cargo": parse_cargo,
    "jest": parse_jest,
    "node": parse_node,
    "mocha": parse_mocha,
}
# For npm scripts and configured commands: try every parser, most specific summary lines first.
AUTO_ORDER = ("pytest", "jest", "node", "cargo", "go", "unittest", "mocha")
FRAMEWORK_PARSERS = {
    "pytest": ("pytest", "unittest"),
    "unittest": ("unittest",),
    "go": ("go",),
    "cargo": ("cargo",),
    "npm": ("jest", "node", "mocha"),
}


def parse_output(framework: str, output: str) -> TestSummary:
    """Parse with the framework's own parsers, then every other one; the first summary wins."""
    order = list(FRAMEWORK_PARSERS.get(framework, ()))
    order += [name for name in AUTO_ORDER if name not in order]
    fallback: TestSummary | None = None
    for name in order:
        summary = PARSERS[name](output)
        if summary.found:
            return summary
        if fallback is None and summary.failures and name in FRAMEWORK_PARSERS.get(framework, ()):
            fallback = summary
    return fallback or TestSummary(framework)
