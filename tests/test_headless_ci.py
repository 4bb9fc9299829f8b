"""Headless CI mode, checkpoints and undo, end to end: the real `luban` as a subprocess with no
stdin, the scripted OpenAI-compatible server, real git repositories."""

from __future__ import annotations

import json
import subprocess

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


def model_args(server) -> list[str]:
    return ["--model", "scripted", "--base-url", server.base_url]


def finish(message: str = "done") -> dict:
    return turn(call("finish", {"message": message}))


# --------------------------------------------------------------------------- the task


def test_task_from_stdin_task_file_and_dash(tmp_path, scripted_server):
    repo = make_repo(tmp_path / "repo")
    for mode in ("pipe", "file", "dash"):
        server = scripted_server([finish()])
        args = ["exec", "--repo", str(repo), "--json", *model_args(server)]
        stdin_text = "fix the bug from " + mode
        if mode == "file":
            (tmp_path / "task.md").write_text(stdin_text + "\n\nwith details\n")
            args += ["--task-file", str(tmp_path / "task.md")]
            stdin_text = ""
        elif mode == "dash":
            args += ["--task-file", "-"]
        proc = subprocess.run(
            [*LUBAN, *args],
            input=stdin_text,
            capture_output=True,
            text=True,
            timeout=60,
            env=luban_env(tmp_path / "home"),
        )
        assert proc.returncode == 0, proc.stderr
        started = json.loads(proc.stdout.splitlines()[0])
        assert started["task"].startswith("fix the bug from " + mode)
        # The task reached the model in the first user message.
        assert "fix the bug from " + mode in json.dumps(server.requests[0]["body"]["messages"])


def test_missing_or_empty_task_is_a_usage_error_without_waiting(tmp_path):
    repo = make_repo(tmp_path / "repo")
    run = run_luban(["exec", "--repo", str(repo)], tmp_path / "home", timeout=20)  # stdin: /dev/null
    assert run.code == 2 and "the task is empty" in run.stderr
    run = run_luban(
        ["exec", "--repo", str(repo), "--task-file", str(tmp_path / "nope.md")], tmp_path / "home"
    )
    assert run.code == 2 and "no such file" in run.stderr
    (tmp_path / "t.md").write_text("x")
    run = run_luban(
        ["exec", "t", "--task-file", str(tmp_path / "t.md"), "--repo", str(repo)], tmp_path / "home"
    )
    assert run.code == 2 and "not both" in run.stderr


# --------------------------------------------------------------------------- patch and summary


def test_output_patch_and_summary(tmp_path, scripted_server):
    repo = make_repo(tmp_path / "repo")
    (repo / "notes.txt").write_text("the user's own uncommitted notes\n")
    script = [
        turn(call("run_tests", {})),
        turn(call("str_replace_editor", FIX)),
        turn(
            call(
                "execute_bash",
                {"command": "printf '\\000\\001\\002binary' > data.bin && chmod +x calc/ops.py"},
            )
        ),
        turn(call("run_tests", {})),
        finish("add() subtracted; fixed. Tests pass."),
    ]
    server = scripted_server(script)
    patch, summary = tmp_path / "out" / "fix.patch", tmp_path / "out" / "summary.md"
    patch.parent.mkdir()
    run = run_luban(
        [
            "exec",
            TASK,
            "--repo",
            str(repo),
            "--json",
            "--output-patch",
            str(patch),
            "--summary",
            str(summary),
            *model_args(server),
        ],
        tmp_path / "home",
    )
    assert run.code == 0, run.stderr
    text = patch.read_text()
    assert "GIT binary patch" in text and "+    return a + b" in text and "new mode 100755" in text
    assert "notes.txt" not in text  # the user's work is not the agent's change
    clean = tmp_path / "clean"
    git(tmp_path, "clone", "-q", str(repo), str(clean))
    git(clean, "apply", "--check", str(patch))
    git(clean, "apply", str(patch))
    assert (clean / "data.bin").read_bytes() == b"\x00\x01\x02binary"
    assert pytest_passes(clean)

    md = summary.read_text()
    assert "calc/ops.py" in md and "data.bin" in md
    assert "run_tests" in md or "pytest" in md
    assert "FAILED" in md.upper() and "PASSED" in md.upper()


def test_patch_and_summary_are_written_when_the_run_gives_up(tmp_path, scripted_server):
    repo = make_repo(tmp_path / "repo")
    server = scripted_server([turn(call("str_replace_editor", FIX)), turn(call("think", {"thought": "hm"}))])
    patch, summary = tmp_path / "p.patch", tmp_path / "s.md"
    run = run_luban(
        [
            "exec",
            TASK,
            "--repo",
            str(repo),
            "--max-steps",
            "2",
            "--output-patch",
            str(patch),
            "--summary",
            str(summary),
            *model_args(server),
        ],
        tmp_path / "home",
    )
    assert run.code == 1
    assert "+    return a + b" in patch.read_text()
    assert "max_steps" in summary.read_text() or "step limit" in summary.read_text().lower()


# --------------------------------------------------------------------------- approvals


def test_auto_edit_refuses_commands_in_a_non_interactive_run(tmp_path, scripted_server):
    repo = make_repo(tmp_path / "repo")
    server = scripted_server(
        [
            turn(call("execute_bash", {"command": "touch pwned.txt"}, "c1")),
            turn(call("str_replace_editor", FIX, "c2")),
            turn(call("run_tests", {}, "c3")),
            finish(),
        ]
    )
    run = run_luban(
        ["exec", TASK, "--repo", str(repo), "--json", "--approval", "auto-edit", *model_args(server)],
        tmp_path / "home",
    )
    assert run.code == 0, run.stderr
    assert not (repo / "pwned.txt").exists()
    assert pytest_passes(repo)  # edits and tests were allowed
    refused = [e for e in run.of_type("tool_call_finished") if e["call_id"] == "c1"][0]
    assert refused["is_error"] and "non-interactive" in refused["output"]
    assert run.of_type("approval_requested")[0]["tool"] == "execute_bash"
    answered = run.of_type("approval_answered")
    assert [(a["tool"], a["decision"]) for a in answered] == [("execute_bash", "deny")]
    # The refusal reached the model.
    assert "non-interactive" in json.dumps(server.requests[1]["body"]["messages"][-1])


def test_read_only_refuses_edits_and_allow_lets_a_prefix_through(tmp_path, scripted_server):
    repo = make_repo(tmp_path / "repo")
    server = scripted_server(
        [
            turn(call("str_replace_editor", FIX, "c1")),
            turn(call("execute_bash", {"command": "echo ok > allowed.txt"}, "c2")),
            finish(),
        ]
    )
    run = run_luban(
        [
            "exec",
            TASK,
            "--repo",
            str(repo),
            "--json",
            "--approval",
            "read-only",
            "--allow",
            "echo",
            *model_args(server),
        ],
        tmp_path / "home",
    )
    assert run.code == 0, run.stderr
    assert "return a - b" in (repo / "calc" / "ops.py").read_text()
    assert (repo / "allowed.txt").read_text() == "ok\n"


def test_force_push_is_refused_even_in_full_auto(tmp_path, scripted_server):
    repo = make_repo(tmp_path / "repo")
    server = scripted_server(
        [turn(call("execute_bash", {"command": "git push --force origin main"}, "c1")), finish()]
    )
    run = run_luban(["exec", TASK, "--repo", str(repo), "--json", *model_args(server)], tmp_path / "home")
    refused = run.of_type("tool_call_finished")[0]
    assert refused["is_error"] and "force" in refused["output"].lower()
    assert run.of_type("approval_answered")[0]["by"] == "policy"


# --------------------------------------------------------------------------- checkpoints and undo


def test_checkpoints_and_undo_bring_back_the_users_work_after_reset_hard(tmp_path, scripted_server):
    repo = make_repo(tmp_path / "repo")
    ops = repo / "calc" / "ops.py"
    ops.write_text(ops.read_text() + "\n# the user's uncommitted comment\n")
    (repo / "scratch.py").write_text("user scratch\n")
    before = {p: (repo / p).read_bytes() for p in ("calc/ops.py", "scratch.py")}
    server = scripted_server(
        [
            turn(call("execute_bash", {"command": "git reset -q --hard && git clean -fdq && rm -rf tests"})),
            turn(call("str_replace_editor", FIX)),
            finish("wrecked it"),
        ]
    )
    home = tmp_path / "home"
    run = run_luban(["exec", TASK, "--repo", str(repo), "--json", *model_args(server)], home)
    assert run.code == 0, run.stderr
    cps = run.of_type("checkpoint")
    # Checkpoint 0 (run start) is also the state before the bash call; 1 is before the edit.
    assert [c["n"] for c in cps] == [1] and cps[0]["ref"].startswith("refs/luban/")
    finished = run.of_type("run_finished")[0]
    assert finished["checkpoints"] == 2
    assert not (repo / "scratch.py").exists() and not (repo / "tests").exists()

    listing = run_luban(["checkpoints", "--repo", str(repo), "--json"], home)
    rows = [json.loads(line) for line in listing.stdout.splitlines()]
    assert [r["n"] for r in rows] == [0, 1] and rows[0]["label"] == "run start"
    assert rows[1]["label"] == "str_replace calc/ops.py" and "scratch.py" in rows[1]["changed_since_previous"]
    assert rows[0]["run"] == finished["run_id"]

    undo = run_luban(["undo", "--repo", str(repo)], home)
    assert undo.code == 0, undo.stderr
    assert {p: (repo / p).read_bytes() for p in before} == before
    assert (repo / "tests" / "test_ops.py").exists()
    assert "To redo" in undo.stdout

    redo_to = undo.stdout.split("--to ")[-1].split()[0]
    redo = run_luban(["undo", "--repo", str(repo), "--to", redo_to], home)
    assert redo.code == 0 and not (repo / "scratch.py").exists()
    assert "return a + b" in ops.read_text()


def test_undo_in_a_plain_directory_and_helpful_errors(tmp_path, scripted_server):
    work = tmp_path / "plain"
    work.mkdir()
    (work / "app.py").write_text("x = 1\n")
    home = tmp_path / "home"
    assert run_luban(["undo", "--repo", str(work)], home).stderr.count("no checkpoints") == 1
    server = scripted_server(
        [
            turn(call("str_replace_editor", {"command": "create", "path": "new.py", "file_text": "y = 2\n"})),
            finish(),
        ]
    )
    run = run_luban(["exec", "add new.py", "--repo", str(work), "--json", *model_args(server)], home)
    assert run.code == 0, run.stderr
    assert "+y = 2" in run.of_type("run_finished")[0]["diff"]
    undo = run_luban(["undo", "--repo", str(work)], home)
    assert undo.code == 0 and not (work / "new.py").exists() and (work / "app.py").read_text() == "x = 1\n"
    bad = run_luban(["undo", "--repo", str(work), "--run", "nope"], home)
    assert bad.code == 2 and "no checkpoints for run 'nope'" in bad.stderr


def test_no_checkpoints_flag(tmp_path, scripted_server):
    repo = make_repo(tmp_path / "repo")
    server = scripted_server([turn(call("str_replace_editor", FIX)), finish()])
    run = run_luban(
        ["exec", TASK, "--repo", str(repo), "--json", "--no-checkpoints", *model_args(server)],
        tmp_path / "home",
    )
    assert run.code == 0 and not run.of_type("checkpoint")
    assert "+    return a + b" in run.of_type("run_finished")[0]["diff"]  # the diff still works
    assert not git(repo, "for-each-ref", "refs/luban")


# --------------------------------------------------------------------------- --branch


def test_branch_mode_commits_only_the_agents_changes(tmp_path, scripted_server):
    repo = make_repo(tmp_path / "repo")
    (repo / "README.md").write_text("the user's untracked readme\n")
    with (repo / "pyproject.toml").open("a") as fh:
        fh.write("# the user's uncommitted edit\n")
    main_before = git(repo, "rev-parse", "main").strip()
    server = scripted_server(FIX_SCRIPT)
    run = run_luban(
        ["exec", TASK, "--repo", str(repo), "--json", "--branch", *model_args(server)], tmp_path / "home"
    )
    assert run.code == 0, run.stderr
    finished = run.of_type("run_finished")[0]
    branch = finished["branch"]
    assert branch == "luban/make-the-failing-test-in-tests-test-ops"
    assert git(repo, "branch", "--show-current").strip() == branch
    assert git(repo, "rev-parse", "main").strip() == main_before  # the user's branch is untouched
    assert git(repo, "rev-parse", "HEAD").strip() == finished["commit"]
    assert git(repo, "show", "--name-only", "--format=", "HEAD").split() == ["calc/ops.py"]
    assert git(repo, "log", "-1", "--format=%s").startswith("luban: " + TASK)
    assert "Luban-Run: " + finished["run_id"] in git(repo, "log", "-1", "--format=%B")
    # Only the user's readme is still uncommitted; the index matches the new commit.
    assert git(repo, "status", "--porcelain").splitlines() == [" M pyproject.toml", "?? README.md"]

    # A second run with the same task gets a fresh branch name.
    server = scripted_server([finish()])
    again = run_luban(
        ["exec", TASK, "--repo", str(repo), "--json", "--branch", *model_args(server)], tmp_path / "home"
    )
    assert again.of_type("run_finished")[0]["branch"] == branch + "-2"


def test_branch_needs_a_git_repository(tmp_path, scripted_server):
    (tmp_path / "plain").mkdir()
    server = scripted_server([finish()])
    run = run_luban(
        ["exec", "x", "--repo", str(tmp_path / "plain"), "--branch", *model_args(server)], tmp_path / "home"
    )
    assert run.code == 2 and "--branch needs a git repository" in run.stderr
