"""End to end: the real `luban exec` as a subprocess, against the scripted OpenAI-compatible server
on 127.0.0.1, on real git repositories with a failing test."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from agent.trajectory import read_trajectory
from tests.support import (
    FIX,
    FIX_SCRIPT,
    LUBAN,
    call,
    git,
    luban_env,
    make_repo,
    pytest_passes,
    run_luban,
    turn,
)

TASK = "make the failing test in tests/test_ops.py pass"


def exec_args(repo: Path, server, *extra: str) -> list[str]:
    return ["exec", TASK, "--repo", str(repo), "--model", "scripted", "--base-url", server.base_url, *extra]


def test_exec_fixes_the_failing_test(tmp_path, scripted_server):
    repo = make_repo(tmp_path / "repo")
    assert not pytest_passes(repo)
    server = scripted_server(FIX_SCRIPT)

    run = run_luban(exec_args(repo, server, "--json"), tmp_path / "home")

    assert run.code == 0, run.stderr
    assert pytest_passes(repo)
    events = run.events
    assert events[0]["type"] == "run_started" and events[0]["model"] == "scripted"
    assert events[0]["commit"] == git(repo, "rev-parse", "HEAD").strip()
    finished = events[-1]
    assert finished["type"] == "run_finished"
    assert finished["reason"] == "finished" and finished["exit_code"] == 0 and finished["steps"] == 5
    assert "-    return a - b" in finished["diff"] and "+    return a + b" in finished["diff"]
    # run_tests went from red to green
    test_runs = [e for e in run.of_type("tool_call_finished") if e["name"] == "run_tests"]
    assert [r["data"]["failed"] for r in test_runs] == [1, 0]
    assert test_runs[0]["output"].startswith("FAILED") and test_runs[1]["output"].startswith("PASSED")
    # no ephemeral deltas in --json output, and every line is an event
    assert not run.of_type("text_delta")
    assert all(line.startswith("{") for line in run.stdout.splitlines())
    # usage is reported per step
    assert len(run.of_type("usage")) == 5

    # the model saw its tool-call ids verbatim, and the tools it was offered
    second = server.requests[1]["body"]
    assert second["messages"][-1] == {
        "role": "tool",
        "tool_call_id": "functions.todo_write:0",
        "content": second["messages"][-1]["content"],
    }
    assert second["messages"][-2]["tool_calls"][0]["id"] == "functions.todo_write:0"
    offered = {t["function"]["name"] for t in server.requests[0]["body"]["tools"]}
    assert {
        "str_replace_editor",
        "execute_bash",
        "think",
        "finish",
        "search",
        "run_tests",
        "todo_write",
    } <= offered
    assert server.requests[0]["body"]["stream"] is True

    # the trajectory: header, the same events, then the result with the diff
    traj = Path(events[0]["trajectory"])
    assert traj.is_file() and traj.is_relative_to(tmp_path / "home")
    records = read_trajectory(traj)
    assert records[0]["type"] == "header"
    assert records[0]["commit"] == events[0]["commit"] and records[0]["model"] == "scripted"
    assert records[0]["repo"] == str(repo.resolve()) and records[0]["task"] == TASK
    assert [r["type"] for r in records[1:-1]] == [e["type"] for e in events]
    assert records[-1]["type"] == "result" and records[-1]["diff"] == finished["diff"]

    # a recorded run is a model: replaying it on a fresh copy of the repo fixes it again
    repo2 = make_repo(tmp_path / "repo2")
    replay = run_luban(["exec", TASK, "--repo", str(repo2), "--model", f"replay:{traj}"], tmp_path / "home")
    assert replay.code == 0, replay.stderr
    assert pytest_passes(repo2)


def test_human_output_shows_progress_and_diff(tmp_path, scripted_server):
    repo = make_repo(tmp_path / "repo")
    server = scripted_server(FIX_SCRIPT)
    run = run_luban(exec_args(repo, server), tmp_path / "home")
    assert run.code == 0, run.stderr
    out = run.stdout
    assert "→ run_tests" in out and "→ str_replace_editor" in out
    assert "FAILED: 1 failed, 1 passed" in out and "PASSED: 2 passed" in out
    assert "+    return a + b" in out
    assert "✔ finished" in out and "trajectory:" in out


def test_user_changes_outside_the_run_are_not_in_the_diff(tmp_path, scripted_server):
    repo = make_repo(tmp_path / "repo")
    (repo / "notes.txt").write_text("my uncommitted notes\n")
    (repo / "calc" / "ops.py").write_text((repo / "calc" / "ops.py").read_text() + "\n# user edit\n")
    server = scripted_server(FIX_SCRIPT)
    run = run_luban(exec_args(repo, server, "--json"), tmp_path / "home")
    assert run.code == 0, run.stderr
    diff = run.events[-1]["diff"]
    assert "+    return a + b" in diff and "notes.txt" not in diff and "user edit" not in diff
    assert (repo / "notes.txt").read_text() == "my uncommitted notes\n"
    assert git(repo, "status", "--porcelain").splitlines() == [" M calc/ops.py", "?? notes.txt"]


def test_model_answering_without_a_tool_call_ends_the_run(tmp_path, scripted_server):
    repo = make_repo(tmp_path / "repo")
    server = scripted_server([turn(content="There is nothing to do.")])
    run = run_luban(exec_args(repo, server, "--json"), tmp_path / "home")
    assert run.code == 0
    assert run.events[-1]["reason"] == "answered" and run.events[-1]["message"] == "There is nothing to do."


# --- bad input from the model -------------------------------------------------------------------


def tool_results(request: dict) -> list[str]:
    return [m["content"] for m in request["body"]["messages"] if m["role"] == "tool"]


def test_unknown_tool_malformed_json_and_ambiguous_edit_are_reported_to_the_model(tmp_path, scripted_server):
    repo = make_repo(tmp_path / "repo")
    (repo / "calc" / "dup.py").write_text("x = 1\nx = 1\n")
    script = [
        turn(call("str_replace", {"path": "calc/ops.py"})),
        turn(call("str_replace_editor", '{"command": "view", "path": ')),
        turn(
            call(
                "str_replace_editor",
                {"command": "str_replace", "path": "calc/dup.py", "old_str": "x = 1", "new_str": "x = 2"},
            )
        ),
        turn(call("str_replace_editor", FIX)),
        turn(call("finish", {"message": "done"})),
    ]
    server = scripted_server(script)
    run = run_luban(exec_args(repo, server, "--json"), tmp_path / "home")
    assert run.code == 0, run.stderr
    assert pytest_passes(repo)
    results = tool_results(server.requests[-1])
    assert "Unknown tool 'str_replace'" in results[0] and "str_replace_editor" in results[0]
    assert "the JSON is cut off" in results[1] and "send the complete arguments" in results[1]
    assert "2" in results[2] and "lines 1, 2" in results[2].replace("lines: ", "lines ")
    assert (repo / "calc" / "dup.py").read_text() == "x = 1\nx = 1\n"
    # malformed arguments were normalised in history, so strict servers do not reject later requests
    bad = server.requests[2]["body"]["messages"][-2]
    assert bad["tool_calls"][0]["function"]["arguments"] == "{}"
    errors = [e for e in run.of_type("tool_call_finished") if e["is_error"]]
    assert len(errors) == 3


def test_cut_off_tool_call_is_never_run(tmp_path, scripted_server):
    repo = make_repo(tmp_path / "repo")
    script = [
        turn(call("execute_bash", {"command": "touch SHOULD_NOT_EXIST"}), finish_reason="length"),
        turn(call("finish", {"message": "ok"})),
    ]
    server = scripted_server(script)
    run = run_luban(exec_args(repo, server, "--json"), tmp_path / "home")
    assert run.code == 0, run.stderr
    assert not (repo / "SHOULD_NOT_EXIST").exists()
    assert "cut off" in server.requests[1]["body"]["messages"][-1]["content"]
    assert not [e for e in run.of_type("tool_call_started") if e["name"] == "execute_bash"]


# --- model server failures ----------------------------------------------------------------------


def test_server_that_is_down_exits_3_with_a_clear_message(tmp_path):
    repo = make_repo(tmp_path / "repo")
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once the socket closes
    run = run_luban(
        [
            "exec",
            TASK,
            "--repo",
            str(repo),
            "--model",
            "m",
            "--base-url",
            f"http://127.0.0.1:{port}/v1",
            "--json",
        ],
        tmp_path / "home",
        LUBAN_MAX_RETRIES="1",
    )
    assert run.code == 3
    finished = run.events[-1]
    assert finished["reason"] == "model_error" and "cannot reach the model server" in finished["message"]
    assert run.of_type("notice")  # the retry was announced
    assert "Traceback" not in run.stderr


def test_500_twice_then_success(tmp_path, scripted_server):
    repo = make_repo(tmp_path / "repo")
    err = {
        "error": {"status": 500, "body": {"error": {"message": "upstream exploded", "type": "server_error"}}}
    }
    server = scripted_server([err, err, *FIX_SCRIPT])
    run = run_luban(exec_args(repo, server, "--json"), tmp_path / "home")
    assert run.code == 0, run.stderr
    assert pytest_passes(repo)
    notices = [n["message"] for n in run.of_type("notice")]
    assert len(notices) == 2 and all("upstream exploded" in n for n in notices)
    assert len(server.requests) == 2 + len(FIX_SCRIPT)


def test_rate_limit_and_broken_stream_are_retried(tmp_path, scripted_server):
    repo = make_repo(tmp_path / "repo")
    script = [
        {
            "error": {
                "status": 429,
                "headers": {"Retry-After": "0"},
                "body": {"error": {"message": "slow down"}},
            }
        },
        {**FIX_SCRIPT[0], "break_after_chunks": 2},
        {"content": "partial", "stream_error": {"message": "upstream went away", "code": 502}},
        *FIX_SCRIPT,
    ]
    server = scripted_server(script)
    run = run_luban(exec_args(repo, server, "--json"), tmp_path / "home", LUBAN_MAX_RETRIES="5")
    assert run.code == 0, run.stderr
    notices = " | ".join(n["message"] for n in run.of_type("notice"))
    assert "slow down" in notices and "broke off" in notices and "upstream went away" in notices


def test_context_overflow_compacts_the_history_and_retries(tmp_path, scripted_server):
    repo = make_repo(tmp_path / "repo")
    msg = "Invalid request: Your request exceeded model token limit: 262144 (requested: 269030)"
    overflow = {
        "error": {"status": 400, "body": {"error": {"message": msg, "type": "invalid_request_error"}}}
    }
    summary = {"content": "SUMMARY: planned the fix, nothing changed yet."}
    server = scripted_server([*FIX_SCRIPT[:2], overflow, summary, *FIX_SCRIPT[2:]])
    run = run_luban(exec_args(repo, server, "--json"), tmp_path / "home")
    assert run.code == 0, run.stderr
    assert pytest_passes(repo)
    notices = " | ".join(n["message"] for n in run.of_type("notice"))
    assert "context overflow reported by the server" in notices and "compacted" in notices
    summary_request = server.requests[3]["body"]
    assert "<conversation>" in summary_request["messages"][-1]["content"] and "tools" not in summary_request
    retried = server.requests[4]["body"]["messages"]
    assert retried[:2] == server.requests[0]["body"]["messages"][:2]
    assert any("SUMMARY: planned the fix" in (m.get("content") or "") for m in retried)


# --- limits and interruption ---------------------------------------------------------------------


def test_max_steps_ends_the_run_with_exit_1(tmp_path, scripted_server):
    repo = make_repo(tmp_path / "repo")
    server = scripted_server([turn(call("think", {"thought": f"hmm {i}"})) for i in range(10)])
    run = run_luban(exec_args(repo, server, "--json", "--max-steps", "3"), tmp_path / "home")
    assert run.code == 1
    assert run.events[-1]["reason"] == "max_steps" and run.events[-1]["steps"] == 3
    assert len(server.requests) == 3


def test_max_cost_ends_the_run(tmp_path, scripted_server):
    repo = make_repo(tmp_path / "repo")
    usage = {"prompt_tokens": 1000, "completion_tokens": 0, "cached_tokens": 0}
    server = scripted_server([turn(call("think", {"thought": "x"}), usage=usage) for _ in range(10)])
    run = run_luban(
        exec_args(repo, server, "--json", "--max-cost", "1.5"), tmp_path / "home", LUBAN_PRICE_INPUT="1000"
    )
    assert run.code == 1
    finished = run.events[-1]
    assert (
        finished["reason"] == "max_cost" and finished["steps"] == 2 and finished["cost"] == pytest.approx(2.0)
    )


def test_time_limit_stops_a_hanging_command(tmp_path, scripted_server):
    repo = make_repo(tmp_path / "repo")
    server = scripted_server([turn(call("execute_bash", {"command": "sleep 60"}))])
    start = time.monotonic()
    run = run_luban(exec_args(repo, server, "--json", "--max-time", "2"), tmp_path / "home")
    assert run.code == 1
    assert run.events[-1]["reason"] == "time_limit"
    assert time.monotonic() - start < 30


def test_ctrl_c_stops_cleanly_and_keeps_the_trajectory(tmp_path, scripted_server):
    repo = make_repo(tmp_path / "repo")
    marker = tmp_path / "child.pid"
    server = scripted_server([turn(call("execute_bash", {"command": f"echo $$ > {marker}; sleep 60"}))])
    traj = tmp_path / "t.jsonl"
    proc = subprocess.Popen(
        [*LUBAN, *exec_args(repo, server, "--json", "--trajectory", str(traj))],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=luban_env(tmp_path / "home"),
    )
    deadline = time.monotonic() + 30
    while not marker.exists() or not marker.read_text().strip():
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    child = int(marker.read_text())
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "trajectory is kept" in err
    records = read_trajectory(traj)
    assert records[-2]["type"] == "run_finished" and records[-2]["reason"] == "interrupted"
    assert records[-1]["type"] == "result"
    with pytest.raises(ProcessLookupError):
        for _ in range(50):  # the command's whole process group was killed
            os.kill(child, 0)
            time.sleep(0.1)


# --- usage and configuration errors -----------------------------------------------------------------


def test_broken_config_gives_file_and_line(tmp_path):
    repo = make_repo(tmp_path / "repo")
    (repo / ".luban.toml").write_text('model = "m"\nmax_steps = [oops\n')
    run = run_luban(["exec", TASK, "--repo", str(repo)], tmp_path / "home")
    assert run.code == 2
    assert ".luban.toml" in run.stderr and "line 2" in run.stderr and "Traceback" not in run.stderr

    (repo / ".luban.toml").write_text('model = "m"\nmax_stepz = 3\n')
    run = run_luban(["exec", TASK, "--repo", str(repo)], tmp_path / "home")
    assert run.code == 2 and ".luban.toml:2" in run.stderr and "max_stepz" in run.stderr

    (repo / ".luban.toml").write_text('max_steps = "many"\n')
    run = run_luban(["exec", TASK, "--repo", str(repo)], tmp_path / "home")
    assert run.code == 2 and ".luban.toml:1" in run.stderr and "max_steps" in run.stderr


def test_usage_errors_exit_2(tmp_path):
    repo = make_repo(tmp_path / "repo")
    home = tmp_path / "home"
    no_model = run_luban(["exec", TASK, "--repo", str(repo)], home)
    assert no_model.code == 2 and "no model configured" in no_model.stderr
    bad_repo = run_luban(["exec", TASK, "--repo", str(tmp_path / "nope"), "--model", "m"], home)
    assert bad_repo.code == 2 and "not a directory" in bad_repo.stderr
    no_key = run_luban(["exec", TASK, "--repo", str(repo), "--provider", "moonshot"], home)
    assert no_key.code == 2 and "MOONSHOT_API_KEY" in no_key.stderr
    bad_flag = run_luban(["exec", TASK, "--max-steps", "many"], home)
    assert bad_flag.code == 2
    missing_replay = run_luban(["exec", TASK, "--repo", str(repo), "--model", "replay:/nope.jsonl"], home)
    assert missing_replay.code == 2 and "no such trajectory" in missing_replay.stderr


def test_settings_come_from_user_config_repo_config_env_and_flags(tmp_path, scripted_server):
    repo = make_repo(tmp_path / "repo")
    home = tmp_path / "home"
    home.mkdir()
    server = scripted_server([turn(call("think", {"thought": "x"})) for _ in range(10)])
    (home / "config.toml").write_text(f'model = "from-user"\nbase_url = "{server.base_url}"\nmax_steps = 9\n')
    (repo / ".luban.toml").write_text('model = "from-repo"\nmax_steps = 8\n')
    run = run_luban(["exec", TASK, "--repo", str(repo), "--json"], home, LUBAN_MAX_STEPS="2")
    assert run.code == 1 and run.events[-1]["steps"] == 2
    assert server.requests[0]["body"]["model"] == "from-repo"
    run = run_luban(
        ["exec", TASK, "--repo", str(repo), "--json", "--max-steps", "1", "--model", "flag"],
        home,
        LUBAN_MAX_STEPS="2",
    )
    assert run.events[-1]["steps"] == 1 and server.requests[-1]["body"]["model"] == "flag"


def test_not_a_git_repository_still_runs(tmp_path, scripted_server):
    work = tmp_path / "plain"
    work.mkdir()
    (work / "a.txt").write_text("hello\n")
    server = scripted_server(
        [
            turn(
                call(
                    "str_replace_editor",
                    {"command": "str_replace", "path": "a.txt", "old_str": "hello", "new_str": "bye"},
                )
            ),
            turn(call("finish", {})),
        ]
    )
    run = run_luban(
        ["exec", "edit", "--repo", str(work), "--model", "m", "--base-url", server.base_url, "--json"],
        tmp_path / "home",
    )
    assert run.code == 0, run.stderr
    assert (work / "a.txt").read_text() == "bye\n"
    assert any("not a git repository" in n["message"] for n in run.of_type("notice"))


def test_help_is_fast_to_import():
    proc = subprocess.run([*LUBAN, "--help"], capture_output=True, text=True, env=luban_env(Path("/tmp")))
    assert proc.returncode == 0 and "exec" in proc.stdout and "demo" in proc.stdout
    code = "import sys, agent.cli; print(','.join(m for m in ('langgraph','openai','textual','git') if m in sys.modules))"
    proc = subprocess.run([os.sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.stdout.strip() == ""  # nothing heavy imported for --help


def test_demo_goes_from_red_to_green(tmp_path):
    run = run_luban(["demo", "--dir", str(tmp_path / "demo")], tmp_path / "home")
    assert run.code == 0, run.stdout + run.stderr
    assert "Tests before the run: FAILED: 2 failed, 2 passed" in run.stdout
    assert "Tests after the run:  PASSED: 4 passed" in run.stdout
    assert "Red → green" in run.stdout
    assert pytest_passes(tmp_path / "demo")
    assert json.loads  # the demo's trajectory is written like any run's
    assert list((tmp_path / "home" / "runs").glob("*.jsonl"))


def test_edit_guard_rolls_back_a_breaking_edit_unless_disabled(tmp_path, scripted_server):
    breaking = {
        "command": "str_replace",
        "path": "calc/ops.py",
        "old_str": "    return a - b",
        "new_str": "    return (a + b",
    }
    for flags, guarded in (([], True), (["--no-edit-guard"], False)):
        repo = make_repo(tmp_path / f"repo{guarded}")
        before = (repo / "calc" / "ops.py").read_text()
        server = scripted_server([turn(call("str_replace_editor", breaking)), turn(call("finish", {}))])
        run = run_luban(exec_args(repo, server, "--json", *flags), tmp_path / "home")
        assert run.code == 0, run.stderr
        (edit,) = [e for e in run.of_type("tool_call_finished") if e["name"] == "str_replace_editor"]
        if guarded:
            assert edit["is_error"] and "NOT applied" in edit["output"] and "line 3" in edit["output"]
            assert (repo / "calc" / "ops.py").read_text() == before
        else:
            assert not edit["is_error"] and "return (a + b" in (repo / "calc" / "ops.py").read_text()


def test_luban_map_prints_a_ranked_outline(tmp_path):
    repo = make_repo(tmp_path / "repo")
    (repo / "calc" / "fmt.py").write_text(
        "from calc.ops import add\n\n\ndef show(a, b):\n    return str(add(a, b))\n"
    )
    run = run_luban(["map", str(repo), "--budget", "400", "--focus", "calc/fmt.py"], tmp_path / "home")
    assert run.code == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0] == "calc/fmt.py:" and any("def show(a, b):" in line for line in lines)
    assert any("def add(a, b):" in line for line in lines)
    assert not list(repo.rglob("*.marshal"))  # the tag cache lives outside the repository
    assert run_luban(["map", str(tmp_path / "nope")], tmp_path / "home").code == 2


def test_first_prompt_carries_a_map_focused_on_the_task(tmp_path, scripted_server):
    repo = make_repo(tmp_path / "repo")
    server = scripted_server([turn(call("finish", {}))])
    run = run_luban(exec_args(repo, server, "--json"), tmp_path / "home")
    assert run.code == 0, run.stderr
    task_message = server.requests[0]["body"]["messages"][1]["content"]
    assert "Repository map" in task_message and "def add(a, b):" in task_message
