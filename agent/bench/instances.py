"""SWE-bench-style task instances: loading, validating and selecting them.

Files are JSON Lines (one instance per line, blank lines skipped) or a ``.json`` file holding a
list. The fields follow SWE-bench (research/swebench.md §1.1). ``FAIL_TO_PASS`` / ``PASS_TO_PASS``
arrive either as JSON-encoded strings (SWE-bench, Lite, Verified) or as real lists (Multilingual);
both are accepted.

What the agent may see: ``problem_statement`` and the repository at ``base_commit``. ``patch`` and
``test_patch`` are for grading. ``hints_text`` (issue comments) is never copied into a field: it
stays in ``raw`` only, so nothing built from an ``Instance``'s fields can leak it by accident.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REQUIRED_FIELDS = ("instance_id", "repo", "base_commit", "problem_statement")


class InstanceError(ValueError):
    """An instance file or selection is wrong; the message names the file, the line and the problem."""


@dataclass(frozen=True)
class Instance:
    instance_id: str
    repo: str  # "owner/name"
    base_commit: str
    problem_statement: str
    patch: str = ""  # the gold fix: never shown to the agent
    test_patch: str = ""  # applied at grading time: never shown to the agent
    fail_to_pass: tuple[str, ...] = ()
    pass_to_pass: tuple[str, ...] = ()
    version: str = ""
    environment_setup_commit: str = ""
    raw: dict = field(default_factory=dict, compare=False, repr=False)  # every original field


def parse_slice(text: str) -> slice:
    """``"a:b"``, ``":b"``, ``"a:"``, ``":"`` as in Python; ``"5"`` selects just index 5."""
    s = text.strip()
    parts = s.split(":")
    try:
        if len(parts) == 1:
            if not s:
                raise ValueError
            i = int(s)
            return slice(i, i + 1 if i != -1 else None)
        if len(parts) == 2:
            start, stop = (int(p) if p.strip() else None for p in parts)
            return slice(start, stop)
    except ValueError:
        pass
    raise InstanceError(
        f"bad slice {text!r}: expected START:STOP, :STOP, START: or a single index (e.g. 0:10, 5)"
    )


def load_instances(path: Path, ids: Iterable[str] | None = None, slice_: str | None = None) -> list[Instance]:
    """Load every instance of ``path``, then keep ``ids`` (file order) and then apply ``slice_``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InstanceError(f"{path}: no such instance file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise InstanceError(f"{path}: cannot read instance file: {e}") from None

    records: list[tuple[str, Any]] = []  # (where, decoded object)
    if path.suffix == ".json" and text.lstrip().startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise InstanceError(f"{path}:{e.lineno}: malformed JSON: {e.msg}") from None
        records = [(f"{path}: item {i}", obj) for i, obj in enumerate(data)]
    else:
        for lineno, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise InstanceError(f"{where}: malformed JSON: {e.msg} (column {e.colno})") from None
            records.append((where, obj))

    instances: list[Instance] = []
    seen: dict[str, str] = {}
    for where, obj in records:
        inst = _instance(obj, where)
        if inst.instance_id in seen:
            raise InstanceError(
                f"{where}: duplicate instance_id {inst.instance_id!r} (first at {seen[inst.instance_id]})"
            )
        seen[inst.instance_id] = where
        instances.append(inst)

    if ids is not None:
        wanted = [ids] if isinstance(ids, str) else list(ids)
        missing = [i for i in dict.fromkeys(wanted) if i not in seen]
        if missing:
            raise InstanceError(f"{path}: instance id(s) not found: {', '.join(missing)}")
        keep = set(wanted)
        instances = [inst for inst in instances if inst.instance_id in keep]

    if slice_ is not None:
        total = len(instances)
        instances = instances[parse_slice(slice_)]
        if not instances:
            raise InstanceError(f"{path}: slice {slice_!r} selects no instance out of {total}")
    return instances


def _instance(obj: Any, where: str) -> Instance:
    if not isinstance(obj, dict):
        raise InstanceError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    missing = [k for k in REQUIRED_FIELDS if k not in obj]
    if missing:
        raise InstanceError(f"{where}: missing required field(s): {', '.join(missing)}")
    for k in REQUIRED_FIELDS:
        if not isinstance(obj[k], str):
            raise InstanceError(f"{where}: field {k!r} must be a string, got {type(obj[k]).__name__}")
        if k != "problem_statement" and not obj[k].strip():
            raise InstanceError(f"{where}: field {k!r} is empty")
    return Instance(
        instance_id=obj["instance_id"],
        repo=obj["repo"],
        base_commit=obj["base_commit"],
        problem_statement=obj["problem_statement"],
        patch=_text(obj, "patch", where),
        test_patch=_text(obj, "test_patch", where),
        fail_to_pass=_test_list(obj, "FAIL_TO_PASS", where),
        pass_to_pass=_test_list(obj, "PASS_TO_PASS", where),
        version=_text(obj, "version", where),
        environment_setup_commit=_text(obj, "environment_setup_commit", where),
        raw=dict(obj),
    )


def _text(obj: dict, key: str, where: str) -> str:
    value = obj.get(key)
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise InstanceError(f"{where}: field {key!r} must be a string, got {type(value).__name__}")
    return str(value)


def _test_list(obj: dict, key: str, where: str) -> tuple[str, ...]:
    value = obj.get(key)
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as e:
            raise InstanceError(f"{where}: field {key!r} is a string but not JSON: {e.msg}") from None
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        raise InstanceError(
            f"{where}: field {key!r} must be a list of test ids (or a JSON string of one), "
            f"got {type(value).__name__}"
        )
    return tuple(value)
