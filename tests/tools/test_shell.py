from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

import pytest

from tools.base import ToolContext
from tools.environment import LocalEnvironment
from tools.registry import ToolRegistry
from tools.shell.execute_bash import ExecuteBash, ExecuteBashParams, clamp_timeout


@pytest.fixture
def ctx(tmp_path: Path) -> ToolContext:
    return ToolContext(root=tmp_path, env=LocalEnvironment(tmp_path))


@pytest.fixture
def registry() -> ToolRegistry:
    return ToolRegistry([ExecuteBash()])


async def bash(registry: ToolRegistry, ctx: ToolContext, **args):
    return await registry.execute("execute_bash", json.dumps(args), ctx)


def pid_alive(pid: int) -> bool:
    """True while the process exists and is not a zombie waiting to be reaped."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


async def test_output_and_exit_code(registry, ctx):
    result = await bash(registry, ctx, command="echo hello; echo world")
    assert not result.is_error
    assert result.output == "hello\nworld\n[exit code: 0]"
    assert result.data["exit_code"] == 0
    assert result.data["timed_out"] is False
    assert result.data["duration"] >= 0


async def test_runs_in_repo_root(registry, ctx, tmp_path):
    (tmp_path / "marker.txt").write_text("x")
    result = await bash(registry, ctx, command="pwd; ls")
    assert str(tmp_path.resolve()) in result.output
    assert "marker.txt" in result.output


async def test_cd_does_not_persist(registry, ctx, tmp_path):
    (tmp_path / "sub").mkdir()
    await bash(registry, ctx, command="cd sub")
    result = await bash(registry, ctx, command="pwd")
    assert result.output.splitlines()[0] == str(tmp_path.resolve())


async def test_stderr_is_merged(registry, ctx):
    result = await bash(registry, ctx, command="echo out; echo err >&2")
    assert "out" in result.output and "err" in result.output
    assert result.output.endswith("[exit code: 0]")


async def test_nonzero_exit_is_not_a_tool_error(registry, ctx):
    result = await bash(registry, ctx, command="echo failing >&2; exit 3")
    assert result.is_error is False
    assert result.output.endswith("[exit code: 3]")
    assert "failing" in result.output
    assert result.data["exit_code"] == 3


async def test_no_output(registry, ctx):
    result = await bash(registry, ctx, command="true")
    assert result.output == "(no output)\n[exit code: 0]"


async def test_stdin_is_closed(registry, ctx):
    start = time.monotonic()
    result = await bash(registry, ctx, command="cat; read line; echo read-exit=$?", timeout=20)
    assert time.monotonic() - start < 10
    assert "read-exit=1" in result.output
    assert result.output.endswith("[exit code: 0]")


async def test_timeout_kills_the_process_group(registry, ctx, tmp_path):
    command = "sleep 300 & echo $! > child.pid; echo started; wait"
    result = await bash(registry, ctx, command=command, timeout=1)
    assert result.is_error is True
    assert result.data["timed_out"] is True
    assert result.data["exit_code"] is None
    assert "timed out after 1 s" in result.output
    assert "process group was killed" in result.output
    assert "started" in result.output  # the partial output is shown
    assert "background" in result.output and "timeout" in result.output

    child = int((tmp_path / "child.pid").read_text())
    for _ in range(50):
        if not pid_alive(child):
            break
        await asyncio.sleep(0.1)
    assert not pid_alive(child), "the background child survived the timeout"


async def test_default_timeout_comes_from_settings(registry, ctx):
    ctx.settings["command_timeout"] = 1
    result = await bash(registry, ctx, command="sleep 10")
    assert result.is_error and result.data["timed_out"]
    assert "after 1 s" in result.output


def test_timeout_is_clamped():
    assert clamp_timeout(None, 180) == 180
    assert clamp_timeout(0, 180) == 1
    assert clamp_timeout(-5, 180) == 1
    assert clamp_timeout(99999, 180) == 3600


async def test_huge_output_keeps_head_and_tail(registry, ctx):
    ctx.settings["max_output_chars"] = 2000
    result = await bash(registry, ctx, command="for i in $(seq 1 20000); do echo line-$i; done")
    assert not result.is_error
    assert len(result.output) < 2300
    assert result.output.startswith("line-1\nline-2\n")
    assert "line-20000\n[exit code: 0]" in result.output
    assert "characters omitted from the middle" in result.output
    assert "line-10000\n" not in result.output


@pytest.mark.parametrize("command", ["", "   ", "\n\t"])
async def test_empty_command_is_an_error(registry, ctx, command):
    result = await bash(registry, ctx, command=command)
    assert result.is_error
    assert "empty" in result.output


async def test_missing_command_argument(registry, ctx):
    result = await registry.execute("execute_bash", "{}", ctx)
    assert result.is_error
    assert "command" in result.output


async def test_live_output_callback(ctx):
    chunks: list[str] = []
    ctx.on_output = chunks.append
    result = await ExecuteBash().run(ExecuteBashParams(command="echo live"), ctx)
    assert "live" in "".join(chunks)
    assert result.output == "live\n[exit code: 0]"


def test_schema_and_description():
    schema = ExecuteBash.schema()["function"]
    assert schema["name"] == "execute_bash"
    assert schema["parameters"]["required"] == ["command"]
    assert "description" in schema["parameters"]["properties"]["timeout"]
    assert "background" in schema["description"]
