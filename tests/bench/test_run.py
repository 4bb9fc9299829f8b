"""`luban bench run` end to end: real git mirrors, a real scripted OpenAI-compatible server, the
real CLI in a subprocess. No network."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from agent.bench.instances import Instance
from agent.bench.run import _repair_jsonl, predicted_ids, task_prompt
from tests.support import FIX, call, git, make_repo, run_luban, turn

PROBLEM = "add() returns the wrong result"
GOLD = """diff --git a/calc/ops.py b/calc/ops.py
--- a/calc/ops.py
+++ b/calc/ops.py
@@ -1,6 +1,6 @@
 def add(a, b):
     \"\"\"Return the sum of a and b.\"\"\"
-    return a - b
+    return a + b
"""
TEST_PATCH = """diff --git a/tests/test_ops.py b/tests/test_ops.py
--- a/tests/test_ops.py
+++ b/tests/test_ops.py
@@ -4,2 +4,3 @@
 def test_add():
     assert add(2, 3) == 5
+    assert add(0, 0) == 0
"""


def agent_turn(body: dict[str, Any]) -> dict[str, Any]:
    """Fix first; once a tool result is in the conversation, finish. Works for any interleaving
    of concurrent instances."""
    if any(m.get("role") == "tool" for m in body.get("messages", [])):
        return turn(call("finish", {"message": "add() adds now."}))
    return turn(call("str_replace_editor", FIX))


@pytest.fixture
def bench(tmp_path: Path) -> dict[str, Any]:
    upstream = make_repo(tmp_path / "upstream")
    cache = tmp_path / "cache"
    cache.mkdir()
    subprocess.run(["git", "clone", "-q", "--mirror", str(upstream), str(cache / "acme__calc")], check=True)
    return {"upstream": upstream, "cache": cache, "base": git(upstream, "rev-parse", "HEAD").strip()}


def write_instances(path: Path, base: str, ids: list[str], bad: set[str] = frozenset()) -> Path:
    rows = [
        {
            "instance_id": iid,
            "repo": "acme/calc",
            "base_commit": "deadbeef" * 5 if iid in bad else base,
            "problem_statement": PROBLEM,
            "hints_text": "SECRET HINT",
            "patch": GOLD,
            "test_patch": TEST_PATCH,
            "FAIL_TO_PASS": json.dumps(["tests/test_ops.py::test_add"]),
            "PASS_TO_PASS": json.dumps(["tests/test_ops.py::test_mul"]),
            "version": "0.1",
        }
        for iid in ids
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def bench_args(instances: Path, out: Path, cache: Path, server, *extra: str) -> list[str]:
    return [
        "bench", "run", "--instances", str(instances), "--out", str(out), "--repo-cache", str(cache),
        "--model", "scripted", "--base-url", server.base_url, "--env", "none", *extra,
    ]  # fmt: skip


def jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def bodies(server) -> str:
    return "\n".join(json.dumps(r["body"]) for r in server.requests)


def test_run_writes_a_prediction_that_applies_then_resumes(tmp_path, bench, scripted_server):
    server = scripted_server([agent_turn, agent_turn])
    instances = write_instances(tmp_path / "instances.jsonl", bench["base"], ["acme__calc-1"])
    out = tmp_path / "out"
    run = run_luban(bench_args(instances, out, bench["cache"], server), tmp_path / "home")
    assert run.code == 0, run.stderr
    assert "[1/1] acme__calc-1 done (finished, 2 steps" in run.stderr
    assert "1 done, 0 error, 0 skipped" in run.stderr

    preds = jsonl(out / "predictions.jsonl")
    assert len(preds) == 1
    pred = preds[0]
    assert pred["instance_id"] == "acme__calc-1" and pred["model_name_or_path"] == "scripted"
    assert "+    return a + b" in pred["model_patch"]
    fresh = tmp_path / "fresh"
    subprocess.run(["git", "clone", "-q", str(bench["upstream"]), str(fresh)], check=True)
    check = subprocess.run(
        ["git", "apply", "--check", "-"], cwd=fresh, input=pred["model_patch"], text=True, capture_output=True
    )
    assert check.returncode == 0, check.stderr
    assert (out / "trajectories" / "acme__calc-1.jsonl").is_file()
    (result,) = jsonl(out / "results.jsonl")
    assert result["status"] == "done" and result["reason"] == "finished" and result["patch_lines"] > 0

    sent = bodies(server)
    assert PROBLEM in sent
    assert "SECRET HINT" not in sent and "assert add(0, 0) == 0" not in sent

    # resume: nothing left to do, no model call
    served = len(server.requests)
    again = run_luban(bench_args(instances, out, bench["cache"], server), tmp_path / "home")
    assert again.code == 0, again.stderr
    assert "0 done, 0 error, 1 skipped" in again.stderr
    assert len(server.requests) == served
    assert len(jsonl(out / "predictions.jsonl")) == 1


def test_two_workers_run_two_instances(tmp_path, bench, scripted_server):
    server = scripted_server([agent_turn] * 4)
    ids = ["acme__calc-1", "acme__calc-2"]
    instances = write_instances(tmp_path / "instances.jsonl", bench["base"], ids)
    out = tmp_path / "out"
    run = run_luban(bench_args(instances, out, bench["cache"], server, "--workers", "2"), tmp_path / "home")
    assert run.code == 0, run.stderr
    preds = {p["instance_id"]: p for p in jsonl(out / "predictions.jsonl")}
    assert set(preds) == set(ids)
    assert all("+    return a + b" in p["model_patch"] for p in preds.values())
    assert {r["status"] for r in jsonl(out / "results.jsonl")} == {"done"}
    assert "2 done, 0 error, 0 skipped" in run.stderr


def test_a_failing_instance_does_not_stop_the_others(tmp_path, bench, scripted_server):
    server = scripted_server([agent_turn] * 2)
    ids = ["acme__calc-1", "acme__calc-2"]
    instances = write_instances(tmp_path / "instances.jsonl", bench["base"], ids, bad={"acme__calc-1"})
    out = tmp_path / "out"
    run = run_luban(bench_args(instances, out, bench["cache"], server), tmp_path / "home")
    assert run.code == 1, run.stderr
    results = {r["instance_id"]: r for r in jsonl(out / "results.jsonl")}
    assert results["acme__calc-1"]["status"] == "error"
    assert "base commit" in results["acme__calc-1"]["error"]
    assert results["acme__calc-2"]["status"] == "done"
    assert [p["instance_id"] for p in jsonl(out / "predictions.jsonl")] == ["acme__calc-2"]
    assert "1 done, 1 error, 0 skipped" in run.stderr


def test_usage_errors_exit_2(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"instance_id": "x"\n')
    run = run_luban(["bench", "run", "--instances", str(bad), "--out", str(tmp_path / "o")], tmp_path / "h")
    assert run.code == 2 and "malformed JSON" in run.stderr
    good = write_instances(tmp_path / "i.jsonl", "abc1234", ["acme__calc-1"])
    run = run_luban(["bench", "run", "--instances", str(good)], tmp_path / "h")
    assert run.code == 2 and "--out" in run.stderr


def test_truncated_last_prediction_is_dropped(tmp_path):
    path = tmp_path / "predictions.jsonl"
    path.write_text('{"instance_id": "a", "model_patch": ""}\n{"instance_id": "b", "model_pa')
    _repair_jsonl(path)
    assert predicted_ids(path) == {"a"}
    assert path.read_text().endswith("\n") and '"b"' not in path.read_text()


def test_the_task_holds_the_problem_statement_only():
    inst = Instance(
        "x__y-1", "x/y", "abc1234", "It {breaks}", patch="GOLD", test_patch="TESTS",
        raw={"hints_text": "SECRET HINT"},
    )  # fmt: skip
    text = task_prompt(inst)
    assert "It {breaks}" in text
    assert not any(s in text for s in ("GOLD", "TESTS", "SECRET HINT"))
