"""agent.bench.instances: loading SWE-bench-style instance files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.bench.instances import Instance, InstanceError, load_instances, parse_slice

SHARED = Path("/work/shared/data/swebench")


def rec(i: int | str, **extra) -> dict:
    r = {
        "instance_id": f"o__r-{i}" if isinstance(i, int) else i,
        "repo": "o/r",
        "base_commit": "a" * 40,
        "problem_statement": f"problem {i}",
        "hints_text": "SECRET HINT",
    }
    r.update(extra)
    return r


def write_jsonl(path: Path, rows: list, blank_after: tuple[int, ...] = ()) -> Path:
    lines = []
    for n, row in enumerate(rows):
        lines.append(row if isinstance(row, str) else json.dumps(row))
        if n in blank_after:
            lines.append("   ")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_string_and_list_test_ids(tmp_path: Path) -> None:
    f = write_jsonl(
        tmp_path / "i.jsonl",
        [
            rec(0, FAIL_TO_PASS=json.dumps(["t.py::a", "t.py::b[x y"]), PASS_TO_PASS="[]"),
            rec(1, FAIL_TO_PASS=["t.py::c"], PASS_TO_PASS=["t.py::d", "t.py::e"]),
            rec(2),  # absent lists
        ],
    )
    a, b, c = load_instances(f)
    assert a.fail_to_pass == ("t.py::a", "t.py::b[x y") and a.pass_to_pass == ()
    assert b.fail_to_pass == ("t.py::c",) and b.pass_to_pass == ("t.py::d", "t.py::e")
    assert c.fail_to_pass == () and c.patch == "" and c.version == ""


@pytest.mark.parametrize("bad", [{"a": 1}, 3, "not json", json.dumps({"a": 1}), [1, 2]])
def test_bad_test_id_shapes(tmp_path: Path, bad) -> None:
    f = write_jsonl(tmp_path / "i.jsonl", [rec(0), rec(1, FAIL_TO_PASS=bad)])
    with pytest.raises(InstanceError, match=r"i\.jsonl:2: field 'FAIL_TO_PASS'"):
        load_instances(f)


def test_fields_and_hints_only_in_raw(tmp_path: Path) -> None:
    row = rec(0, patch="P", test_patch="TP", version="3.10", environment_setup_commit="e" * 40, extra=1)
    (inst,) = load_instances(write_jsonl(tmp_path / "i.jsonl", [row]))
    assert (inst.patch, inst.test_patch, inst.version, inst.environment_setup_commit) == (
        "P",
        "TP",
        "3.10",
        "e" * 40,
    )
    assert inst.raw == row
    visible = [getattr(inst, f) for f in Instance.__dataclass_fields__ if f != "raw"]
    assert not any("SECRET HINT" in str(v) for v in visible)
    assert "SECRET" not in repr(inst)
    hash(inst)  # frozen and hashable despite the raw dict


def test_json_list_file(tmp_path: Path) -> None:
    f = tmp_path / "i.json"
    f.write_text(json.dumps([rec(0), rec(1, FAIL_TO_PASS=["x"])], indent=2))
    got = load_instances(f)
    assert [i.instance_id for i in got] == ["o__r-0", "o__r-1"] and got[1].fail_to_pass == ("x",)
    f.write_text(json.dumps([rec(0), {"repo": "o/r"}]))
    with pytest.raises(InstanceError, match=r"i\.json: item 1: missing required field"):
        load_instances(f)


def test_blank_lines_skipped_and_line_numbers(tmp_path: Path) -> None:
    f = write_jsonl(tmp_path / "i.jsonl", [rec(0), rec(1), "{broken"], blank_after=(0, 1))
    # lines: 1 rec0, 2 blank, 3 rec1, 4 blank, 5 broken
    with pytest.raises(InstanceError, match=r"i\.jsonl:5: malformed JSON"):
        load_instances(f)
    f = write_jsonl(tmp_path / "j.jsonl", [rec(0), rec(1)], blank_after=(0, 1))
    assert len(load_instances(f)) == 2


def test_missing_field(tmp_path: Path) -> None:
    row = rec(0)
    del row["base_commit"], row["problem_statement"]
    f = write_jsonl(tmp_path / "i.jsonl", [rec(1), row])
    with pytest.raises(
        InstanceError, match=r"i\.jsonl:2: missing required field\(s\): base_commit, problem_statement"
    ):
        load_instances(f)
    f = write_jsonl(tmp_path / "k.jsonl", [rec(1, repo="")])
    with pytest.raises(InstanceError, match=r"k\.jsonl:1: field 'repo' is empty"):
        load_instances(f)
    f = write_jsonl(tmp_path / "l.jsonl", ["[1, 2]"])
    with pytest.raises(InstanceError, match=r"l\.jsonl:1: expected a JSON object"):
        load_instances(f)


def test_duplicate_id(tmp_path: Path) -> None:
    f = write_jsonl(tmp_path / "i.jsonl", [rec(0), rec(1), rec(0)])
    with pytest.raises(
        InstanceError, match=r"i\.jsonl:3: duplicate instance_id 'o__r-0' \(first at .*i\.jsonl:1\)"
    ):
        load_instances(f)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InstanceError, match="no such instance file"):
        load_instances(tmp_path / "nope.jsonl")


def test_ids_filter(tmp_path: Path) -> None:
    f = write_jsonl(tmp_path / "i.jsonl", [rec(n) for n in range(6)])
    got = load_instances(f, ids=["o__r-4", "o__r-1", "o__r-4"])
    assert [i.instance_id for i in got] == ["o__r-1", "o__r-4"]  # file order, no duplicates
    assert [i.instance_id for i in load_instances(f, ids="o__r-2")] == ["o__r-2"]
    with pytest.raises(InstanceError, match="not found: o__r-9, x__y-1"):
        load_instances(f, ids=["o__r-1", "o__r-9", "x__y-1"])
    # the slice applies after the ids
    got = load_instances(f, ids=["o__r-1", "o__r-3", "o__r-5"], slice_="1:")
    assert [i.instance_id for i in got] == ["o__r-3", "o__r-5"]


def test_slices(tmp_path: Path) -> None:
    f = write_jsonl(tmp_path / "i.jsonl", [rec(n) for n in range(10)])

    def ids(s: str) -> list[int]:
        return [int(i.instance_id.rsplit("-", 1)[1]) for i in load_instances(f, slice_=s)]

    assert ids("2:5") == [2, 3, 4]
    assert ids(":3") == [0, 1, 2]
    assert ids("7") == [7]
    assert ids("8:") == [8, 9]
    assert ids("-1") == [9]
    assert ids(" 0 : 2 ") == [0, 1]
    with pytest.raises(InstanceError, match="selects no instance out of 10"):
        load_instances(f, slice_="12")
    for bad in ["a:b", "1:2:3", "", "x", "1-3"]:
        with pytest.raises(InstanceError, match="bad slice"):
            parse_slice(bad)
    assert parse_slice("5") == slice(5, 6) and parse_slice(":") == slice(None, None)


@pytest.mark.skipif(not SHARED.is_dir(), reason=f"{SHARED} is absent (shared SWE-bench data not mounted)")
def test_shared_files_load_completely() -> None:
    files = sorted(SHARED.glob("*.jsonl"))
    assert files
    for f in files:
        lines = [ln for ln in f.read_text().splitlines() if ln.strip()]
        got = load_instances(f)
        assert len(got) == len(lines), f
        for inst in got:
            assert inst.repo.count("/") == 1 and len(inst.base_commit) == 40
            assert inst.fail_to_pass, f"{inst.instance_id} has no FAIL_TO_PASS"
            assert inst.problem_statement and inst.patch and inst.test_patch
            assert "hints_text" in inst.raw
