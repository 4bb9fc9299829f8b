"""How `luban` decides between the TUI and a subcommand, and finds earlier runs."""

from __future__ import annotations

import pytest

from agent.cli import find_trajectory, latest_run, wants_tui
from agent.config import ConfigError, Settings
from agent.trajectory import TrajectoryWriter, find_runs, read_header
from tests.support import run_luban


@pytest.mark.parametrize(
    ("argv", "tui"),
    [
        ([], True),
        (["fix the bug"], True),
        (["--continue"], True),
        (["--resume", "20260101-000000-abcdef"], True),
        (["exec", "x"], False),
        (["undo"], False),
        (["inspect", "f.jsonl"], False),
        (["--help"], False),
        (["--version"], False),
    ],
)
def test_wants_tui(argv, tui):
    assert wants_tui(argv) is tui


def test_tui_without_a_terminal_is_a_clear_usage_error(tmp_path):
    run = run_luban(["fix it"], tmp_path / "home", timeout=20)
    assert run.code == 2 and "needs a terminal" in run.stderr and "luban exec" in run.stderr


def test_inspect_of_a_missing_run_is_a_usage_error(tmp_path):
    run = run_luban(["inspect", "no-such-run"], tmp_path / "home", timeout=20)
    assert run.code == 2 and "no such trajectory file or run id" in run.stderr


def write_run(runs, run_id, repo):
    w = TrajectoryWriter(runs / f"{run_id}.jsonl")
    w.header(run_id=run_id, task="t", repo=str(repo))
    w.close()


def test_find_runs_and_latest_run(tmp_path):
    runs = tmp_path / "runs"
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    write_run(runs, "20260101-000000-aaaaaa", a)
    write_run(runs, "20260102-000000-bbbbbb", b)
    write_run(runs, "20260103-000000-cccccc", a)
    (runs / "junk.jsonl").write_text("not json\n")
    assert read_header(runs / "junk.jsonl") is None
    assert [h["run_id"] for _, h in find_runs(runs, a)] == [
        "20260101-000000-aaaaaa",
        "20260103-000000-cccccc",
    ]
    settings = Settings(trajectory_dir=str(runs))
    assert latest_run(settings, a).name == "20260103-000000-cccccc.jsonl"
    assert find_trajectory("20260102-000000-bbbbbb", settings).parent == runs
    with pytest.raises(ConfigError, match="no earlier run"):
        latest_run(settings, tmp_path)
