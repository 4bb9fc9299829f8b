"""Regenerate ``agent/bench/specs.json`` from SWE-bench's own install-spec table.

Usage::

    python -m agent.bench.extract_specs --mirror /work/.mirror/SWE-bench+SWE-bench/repo --rev v4.1.0

The constants module is read with ``git --git-dir MIRROR show REV:PATH`` and is never imported or
``exec``-ed. Its statements are run by a small interpreter over the ``ast`` that only knows literals
and the few constructs the table is built with:

* ``NAME = <expr>`` and ``NAME[k][k2] = <expr>`` (subscript stores), ``x += <expr>``;
* expressions: constants, list/tuple/set/dict displays (with ``**`` unpacking), names of earlier
  module-level values, subscripts, ``a + b``, ``-x``, dict/list comprehensions over evaluated
  iterables, and the pure builtins ``int``/``float``/``str``/``list``/``dict``/``sorted``;
* ``X.update(...)``, ``X.extend(...)``, ``X.append(...)`` on evaluated values;
* ``for NAME in <expr>:`` and ``if``/``elif``/``else`` (comparisons, ``and``/``or``/``not``) with
  bodies of the statements above.

A statement that fails is rolled back as a whole (the module-level values are restored), so a
half-run loop never leaves a partly updated table behind.

Anything else (imports, function definitions, other calls, ...) is skipped with a ``warning:``
line on stderr; a statement that refers to a skipped value is skipped too.

The test-log parser names come from ``MAP_REPO_TO_PARSER[_PY]`` in the log_parsers module: each value
is a function name there (e.g. ``parse_log_flask``), recorded as a string together with the
function it aliases (e.g. ``parse_log_pytest``) when it is a plain ``alias = other`` assignment.
"""

from __future__ import annotations

import argparse
import ast
import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

CONSTANTS_PATHS = ("swebench/harness/constants/python.py", "swebench/harness/constants.py")
PARSER_PATHS = ("swebench/harness/log_parsers/python.py", "swebench/harness/log_parsers.py")
SPEC_TABLES = ("MAP_REPO_VERSION_TO_SPECS_PY", "MAP_REPO_VERSION_TO_SPECS")
PARSER_TABLES = ("MAP_REPO_TO_PARSER_PY", "MAP_REPO_TO_PARSER")
REQS_TABLES = ("MAP_REPO_TO_REQS_PATHS_PY", "MAP_REPO_TO_REQS_PATHS")
ENV_YML_TABLES = ("MAP_REPO_TO_ENV_YML_PATHS_PY", "MAP_REPO_TO_ENV_YML_PATHS")
TEST_SPEC_PATHS = ("swebench/harness/test_spec/python.py", "swebench/harness/test_spec.py")
DEFAULT_OUT = Path(__file__).with_name("specs.json")

_PURE_BUILTINS = {"int": int, "float": float, "str": str, "list": list, "dict": dict, "sorted": sorted}
_MUTATORS = {"update", "extend", "append"}
_COMPARE = {
    ast.Eq: lambda a, b: a == b,
    ast.NotEq: lambda a, b: a != b,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
    ast.Lt: lambda a, b: a < b,
    ast.LtE: lambda a, b: a <= b,
    ast.Gt: lambda a, b: a > b,
    ast.GtE: lambda a, b: a >= b,
}


class Unsupported(Exception):
    """A construct the restricted interpreter does not evaluate."""


def _warn(msg: str) -> None:
    print(f"warning: {msg}", file=sys.stderr)


class _Interp:
    def __init__(self, filename: str) -> None:
        self.env: dict[str, Any] = {}
        self.filename = filename
        self.skipped: list[str] = []

    # ---- expressions -------------------------------------------------------------------
    def ev(self, node: ast.AST, local: dict[str, Any] | None = None) -> Any:
        local = local or {}
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            if node.id in local:
                return local[node.id]
            if node.id in self.env:
                return self.env[node.id]
            raise Unsupported(f"unknown name {node.id!r}")
        if isinstance(node, (ast.List, ast.Tuple)):
            out: list[Any] = []
            for elt in node.elts:
                if isinstance(elt, ast.Starred):
                    out.extend(self.ev(elt.value, local))
                else:
                    out.append(self.ev(elt, local))
            return out if isinstance(node, ast.List) else tuple(out)
        if isinstance(node, ast.Set):
            return {self.ev(e, local) for e in node.elts}
        if isinstance(node, ast.Dict):
            d: dict[Any, Any] = {}
            for k, v in zip(node.keys, node.values, strict=True):
                if k is None:
                    d.update(self.ev(v, local))
                else:
                    d[self.ev(k, local)] = self.ev(v, local)
            return d
        if isinstance(node, ast.Subscript):
            return self.ev(node.value, local)[self.ev(node.slice, local)]
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            return self.ev(node.left, local) + self.ev(node.right, local)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -self.ev(node.operand, local)
        if isinstance(node, (ast.DictComp, ast.ListComp)):
            return self._comp(node, local)
        if isinstance(node, ast.Compare):
            left = self.ev(node.left, local)
            for op, comp in zip(node.ops, node.comparators, strict=True):
                right = self.ev(comp, local)
                if type(op) not in _COMPARE:
                    raise Unsupported(f"comparison {type(op).__name__}")
                if not _COMPARE[type(op)](left, right):
                    return False
                left = right
            return True
        if isinstance(node, ast.BoolOp):
            values = (self.ev(v, local) for v in node.values)
            return all(values) if isinstance(node.op, ast.And) else any(values)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            return not self.ev(node.operand, local)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _PURE_BUILTINS:
            if node.keywords:
                raise Unsupported("keyword arguments")
            return _PURE_BUILTINS[node.func.id](*(self.ev(a, local) for a in node.args))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "keys":
            return list(self.ev(node.func.value, local).keys())
        raise Unsupported(type(node).__name__)

    def _comp(self, node: ast.DictComp | ast.ListComp, local: dict[str, Any]) -> Any:
        if len(node.generators) != 1 or node.generators[0].is_async:
            raise Unsupported("comprehension with several generators")
        gen = node.generators[0]
        if not isinstance(gen.target, ast.Name):
            raise Unsupported("comprehension target that is not a name")
        result: Any = {} if isinstance(node, ast.DictComp) else []
        for item in self.ev(gen.iter, local):
            scope = {**local, gen.target.id: item}
            if not all(self.ev(cond, scope) for cond in gen.ifs):
                continue
            if isinstance(node, ast.DictComp):
                result[self.ev(node.key, scope)] = self.ev(node.value, scope)
            else:
                result.append(self.ev(node.elt, scope))
        return result

    # ---- statements ---------------------------------------------------------------------
    def _store(self, target: ast.AST, value: Any, local: dict[str, Any]) -> None:
        if isinstance(target, ast.Name):
            if target.id in local:
                raise Unsupported("assignment to a loop variable")
            self.env[target.id] = value
        elif isinstance(target, ast.Subscript):
            self.ev(target.value, local)[self.ev(target.slice, local)] = value
        else:
            raise Unsupported(f"assignment target {type(target).__name__}")

    def ex(self, node: ast.stmt, local: dict[str, Any]) -> None:
        if isinstance(node, ast.Assign):
            value = self.ev(node.value, local)
            for t in node.targets:
                self._store(t, value, local)
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            self._store(node.target, self.ev(node.value, local), local)
        elif isinstance(node, ast.AugAssign) and isinstance(node.op, ast.Add):
            if isinstance(node.target, ast.Name):
                cur = self.ev(node.target, local)
            elif isinstance(node.target, ast.Subscript):
                cur = self.ev(node.target, local)
            else:
                raise Unsupported("augmented assignment target")
            new = self.ev(node.value, local)
            if isinstance(cur, list):
                cur += new  # in place, like Python
                value = cur
            else:
                value = cur + new
            self._store(node.target, value, local)
        elif (
            isinstance(node, ast.Expr)
            and isinstance(node.value, ast.Call)
            and isinstance(node.value.func, ast.Attribute)
            and node.value.func.attr in _MUTATORS
            and not node.value.keywords
        ):
            obj = self.ev(node.value.func.value, local)
            args = [self.ev(a, local) for a in node.value.args]
            getattr(obj, node.value.func.attr)(*args)
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            pass  # docstring / bare string
        elif isinstance(node, ast.If):
            for stmt in node.body if self.ev(node.test, local) else node.orelse:
                self.ex(stmt, local)
        elif isinstance(node, ast.For) and not node.orelse and isinstance(node.target, ast.Name):
            for item in self.ev(node.iter, local):
                scope = {**local, node.target.id: item}
                for stmt in node.body:
                    self.ex(stmt, scope)
        else:
            raise Unsupported(type(node).__name__)

    def run(self, source: str) -> dict[str, Any]:
        tree = ast.parse(source, filename=self.filename)
        for stmt in tree.body:
            snapshot = copy.deepcopy(self.env)  # a statement that fails half-way leaves no trace
            try:
                self.ex(stmt, {})
            except (Unsupported, KeyError, TypeError, IndexError, AttributeError, ValueError) as e:
                self.env = snapshot
                what = (
                    f"{self.filename}:{stmt.lineno}: skipped {type(stmt).__name__} ({type(e).__name__}: {e})"
                )
                self.skipped.append(what)
                _warn(what)
        return self.env


def _git_show(mirror: Path, rev: str, paths: tuple[str, ...]) -> tuple[str, str]:
    errors = []
    for p in paths:
        r = subprocess.run(
            ["git", "--git-dir", str(mirror), "show", f"{rev}:{p}"], capture_output=True, text=True
        )
        if r.returncode == 0:
            return p, r.stdout
        errors.append(f"{p}: {r.stderr.strip()}")
    raise FileNotFoundError(f"{mirror} @ {rev}: none of {', '.join(paths)} found ({'; '.join(errors)})")


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, (set, frozenset)):
        return sorted(_jsonable(x) for x in v)
    return v


def _parsers(source: str, filename: str) -> dict[str, dict[str, str]]:
    tree = ast.parse(source, filename=filename)
    aliases: dict[str, str] = {}
    table: ast.Dict | None = None
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
            name = stmt.targets[0].id
            if isinstance(stmt.value, ast.Name):
                aliases[name] = stmt.value.id
            elif name in PARSER_TABLES and isinstance(stmt.value, ast.Dict):
                table = stmt.value
    out: dict[str, dict[str, str]] = {}
    if table is None:
        _warn(f"{filename}: no {' / '.join(PARSER_TABLES)} dict found; no log parsers recorded")
        return out
    for k, v in zip(table.keys, table.values, strict=True):
        if isinstance(k, ast.Constant) and isinstance(v, ast.Name):
            target = v.id
            while target in aliases:
                target = aliases[target]
            out[k.value] = {"name": v.id, "function": target}
        else:
            _warn(f"{filename}:{getattr(k, 'lineno', '?')}: skipped a parser entry that is not 'repo': name")
    return out


def extract(mirror: Path, rev: str) -> dict[str, Any]:
    """Read the spec table (and log-parser map) at ``rev`` of the git mirror; return specs.json's data."""
    path, source = _git_show(Path(mirror), rev, CONSTANTS_PATHS)
    env = _Interp(path).run(source)
    table_name = next((n for n in SPEC_TABLES if isinstance(env.get(n), dict)), None)
    if table_name is None:
        raise ValueError(f"{mirror} @ {rev}:{path}: no {' / '.join(SPEC_TABLES)} could be evaluated")
    repos = _jsonable(env[table_name])
    try:
        ppath, psource = _git_show(Path(mirror), rev, PARSER_PATHS)
        parsers = _parsers(psource, ppath)
    except FileNotFoundError as e:
        _warn(str(e))
        parsers = {}
    data = {
        "source": f"SWE-bench {rev}",
        "table": f"{path}:{table_name}",
        "repos": repos,
        "log_parsers": parsers,
    }
    # where each repo keeps the requirements/environment file its "packages" spec refers to
    for key, names in (("reqs_paths", REQS_TABLES), ("env_yml_paths", ENV_YML_TABLES)):
        name = next((n for n in names if isinstance(env.get(n), dict)), None)
        data[key] = _jsonable(env[name]) if name else {}
    try:
        tpath, tsource = _git_show(Path(mirror), rev, TEST_SPEC_PATHS)
        data["replace_requirements"] = _jsonable(_Interp(tpath).run(tsource).get("REPLACE_REQ_PACKAGES", []))
    except FileNotFoundError as e:
        _warn(str(e))
        data["replace_requirements"] = []
    return data


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mirror", type=Path, required=True, help="bare git directory of SWE-bench")
    ap.add_argument("--rev", default="v4.1.0")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args(argv)
    data = extract(args.mirror, args.rev)
    args.out.write_text(json.dumps(data, indent=1, sort_keys=False) + "\n", encoding="utf-8")
    n = sum(len(v) for v in data["repos"].values())
    print(
        f"wrote {args.out}: {len(data['repos'])} repos, {n} repo/version specs, {len(data['log_parsers'])} parsers"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
