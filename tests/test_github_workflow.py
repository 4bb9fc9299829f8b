"""The example GitHub Actions workflow (examples/github-actions/luban.yml), run locally: its `run:`
steps execute in order with bash, as GitHub would run them, against a real git repository and the
scripted OpenAI-compatible server. `uses:` steps are emulated (the checkout already exists, the
venv's bin dir is first on PATH, artifacts are checked for existence) and `pip install` steps are
skipped."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import FIX_SCRIPT, call, git, luban_env, make_repo, pytest_passes, turn

WORKFLOW = Path(__file__).resolve().parents[1] / "examples" / "github-actions" / "luban.yml"
VENV_BIN = Path(sys.executable).parent


def load_workflow() -> dict[str, Any]:
    data = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    # YAML 1.1 reads the key `on` as True
    if True in data:
        data["on"] = data.pop(True)
    return data


# --------------------------------------------------------------------------- a tiny GitHub emulator


def lookup(context: dict[str, Any], path: str) -> Any:
    value: Any = context
    for part in path.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        else:
            return ""
    return value


def evaluate(expr: str, context: dict[str, Any]) -> Any:
    """The subset of GitHub expressions the workflow uses: `a || b`, `a == 'x'`, dotted lookups,
    string literals, always()/success()/failure()."""
    expr = expr.strip()
    if "||" in expr:
        for part in expr.split("||"):
            value = evaluate(part, context)
            if value not in ("", None, False, 0):
                return value
        return value
    for op in ("==", "!="):
        if op in expr:
            left, right = (evaluate(x, context) for x in expr.split(op, 1))
            return (str(left) == str(right)) == (op == "==")
    if expr in ("always()", "success()", "failure()"):
        return {"always()": True, "success()": not context["failed"], "failure()": context["failed"]}[expr]
    if expr.startswith("'") and expr.endswith("'"):
        return expr[1:-1]
    return lookup(context, expr)


def substitute(text: str, context: dict[str, Any]) -> str:
    return re.sub(r"\$\{\{(.*?)\}\}", lambda m: str(evaluate(m.group(1), context)), str(text))


def read_outputs(path: Path) -> dict[str, str]:
    """GITHUB_OUTPUT: `name=value` lines and `name<<DELIM` ... `DELIM` blocks."""
    out: dict[str, str] = {}
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    i = 0
    while i < len(lines):
        line = lines[i]
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delim = line.split("<<", 1)
            j = lines.index(delim, i + 1)
            out[name] = "\n".join(lines[i + 1 : j])
            i = j + 1
            continue
        if "=" in line:
            name, value = line.split("=", 1)
            out[name] = value
        i += 1
    return out


@dataclass
class StepResult:
    name: str
    status: str  # ran | skipped | emulated
    code: int = 0
    stdout: str = ""
    stderr: str = ""


@dataclass
class WorkflowRun:
    steps: list[StepResult] = field(default_factory=list)
    summary: str = ""
    uploaded: list[Path] = field(default_factory=list)
    context: dict[str, Any] = field(default_factory=dict)

    def step(self, name: str) -> StepResult:
        return next(s for s in self.steps if s.name == name)


def run_workflow(
    tmp_path: Path,
    workspace: Path,
    event_name: str,
    event: dict[str, Any],
    variables: dict[str, str],
    secrets: dict[str, str] | None = None,
) -> WorkflowRun:
    workflow = load_workflow()
    job = workflow["jobs"]["luban"]
    runner_temp = tmp_path / "runner-temp"
    runner_temp.mkdir()
    event_path = tmp_path / "event.json"
    event_path.write_text(json.dumps(event), encoding="utf-8")
    context: dict[str, Any] = {
        "github": {
            "event_name": event_name,
            "event": event,
            "run_id": "4242",
            "repository_owner": "octo",
            "workspace": str(workspace),
            "token": "",
        },
        "vars": variables,
        "secrets": secrets or {},
        "runner": {"temp": str(runner_temp)},
        "steps": {},
        "inputs": event.get("inputs", {}),
        "failed": False,
    }
    assert evaluate(job["if"], context), "the job's `if:` would skip this event"
    shell = workflow["defaults"]["run"]["shell"]
    assert shell == "bash"

    base_env = luban_env(tmp_path / "home")
    base_env.update(
        {
            "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "CI": "true",
            "GITHUB_ACTIONS": "true",
            "GITHUB_EVENT_NAME": event_name,
            "GITHUB_EVENT_PATH": str(event_path),
            "GITHUB_WORKSPACE": str(workspace),
            "GITHUB_RUN_ID": "4242",
            "RUNNER_TEMP": str(runner_temp),
        }
    )
    base_env.pop("VIRTUAL_ENV", None)
    for key, value in job.get("env", {}).items():
        base_env[key] = substitute(value, context)

    result = WorkflowRun(context=context)
    for n, step in enumerate(job["steps"]):
        name = step.get("name", f"step {n}")
        condition = str(step.get("if", "success()"))
        if not evaluate(condition.removeprefix("${{").removesuffix("}}"), context):
            result.steps.append(StepResult(name, "skipped"))
            continue
        if "uses" in step:
            uses = step["uses"]
            if uses.startswith("actions/upload-artifact"):
                paths = substitute(step["with"]["path"], context).split()
                result.uploaded = [Path(p) for p in paths]
            result.steps.append(StepResult(name, "emulated"))
            continue
        script = step["run"]
        if re.search(r"\bpip install\b", script):
            result.steps.append(StepResult(name, "skipped"))
            continue
        output_file = tmp_path / f"output-{n}"
        summary_file = tmp_path / f"summary-{n}"
        output_file.touch()
        summary_file.touch()
        env = dict(base_env)
        env.update({k: substitute(v, context) for k, v in step.get("env", {}).items()})
        env.update({"GITHUB_OUTPUT": str(output_file), "GITHUB_STEP_SUMMARY": str(summary_file)})
        script_file = tmp_path / f"step-{n}.sh"
        script_file.write_text(substitute(script, context), encoding="utf-8")
        # GitHub runs `shell: bash` as `bash --noprofile --norc -eo pipefail {0}`.
        proc = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script_file)],
            cwd=workspace,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=180,
        )
        result.steps.append(StepResult(name, "ran", proc.returncode, proc.stdout, proc.stderr))
        result.summary += summary_file.read_text(encoding="utf-8")
        if "id" in step:
            context["steps"][step["id"]] = {"outputs": read_outputs(output_file)}
        if proc.returncode != 0:
            context["failed"] = True
    return result


def issue_event(title: str, body: str) -> dict[str, Any]:
    return {
        "action": "labeled",
        "label": {"name": "luban"},
        "issue": {
            "number": 7,
            "title": title,
            "body": body,
            "html_url": "https://github.com/octo/calc/issues/7",
        },
    }


# --------------------------------------------------------------------------- the workflow file


def test_workflow_shape():
    workflow = load_workflow()
    assert workflow["on"]["issues"]["types"] == ["labeled"]
    assert "task" in workflow["on"]["workflow_dispatch"]["inputs"]
    job = workflow["jobs"]["luban"]
    assert "'luban'" in job["if"]
    uses = [s.get("uses", "") for s in job["steps"]]
    assert "actions/checkout@v4" in uses and "actions/setup-python@v5" in uses
    assert "actions/upload-artifact@v4" in uses
    setup = next(s for s in job["steps"] if s.get("uses", "").startswith("actions/setup-python"))
    assert setup["with"]["python-version"] == "3.11"
    upload = next(s for s in job["steps"] if s.get("uses", "").startswith("actions/upload-artifact"))
    assert upload["if"] == "always()"
    run = next(s for s in job["steps"] if s.get("id") == "luban")
    for flag in (
        "--task-file",
        "--approval auto-edit",
        "--output-patch",
        "--summary",
        "--trajectory",
        "--json",
    ):
        assert flag in run["run"]
    assert {"LUBAN_MODEL", "LUBAN_BASE_URL", "LUBAN_PROVIDER", "MOONSHOT_API_KEY"} <= set(run["env"])
    # every shell step is strict, and untrusted issue text never reaches a script through ${{ }}
    for step in job["steps"]:
        if "run" in step:
            assert step["run"].lstrip().startswith("set -euo pipefail"), step["name"]
            assert "github.event.issue" not in step["run"], step["name"]
    assert job["steps"][-1]["if"] == "always()" and "exit" in job["steps"][-1]["run"]


# --------------------------------------------------------------------------- running it


@pytest.fixture
def workspace(tmp_path) -> Path:
    return make_repo(tmp_path / "workspace")


def test_issue_run_produces_a_patch_summary_and_events(tmp_path, workspace, scripted_server):
    server = scripted_server(FIX_SCRIPT)
    head = git(workspace, "rev-parse", "HEAD").strip()
    run = run_workflow(
        tmp_path,
        workspace,
        "issues",
        issue_event("add() subtracts", "Make the failing test in tests/test_ops.py pass."),
        {"LUBAN_MODEL": "scripted", "LUBAN_BASE_URL": server.base_url},
    )
    statuses = {s.name: (s.status, s.code) for s in run.steps}
    assert statuses["Check out the repository"] == ("emulated", 0)
    assert statuses["Install Luban"] == ("skipped", 0)
    for step in run.steps:
        assert step.code == 0, (step.name, step.stdout, step.stderr)
    assert run.context["steps"]["luban"]["outputs"]["exit_code"] == "0"
    assert run.context["steps"]["task"]["outputs"]["title"] == "add() subtracts"
    assert "Luban finished" in run.step("Fail the job if Luban did not finish").stdout

    out = Path(run.context["runner"]["temp"]) / "luban"
    task = (out / "task.md").read_text()
    assert task.startswith("# add() subtracts\n\nMake the failing test") and "issues/7" in task
    assert "add() subtracts" in json.dumps(server.requests[0]["body"]["messages"])

    # the patch applies to a clean checkout of HEAD, and fixes it
    patch = out / "luban.patch"
    assert "+    return a + b" in patch.read_text()
    clean = tmp_path / "clean"
    subprocess.run(["git", "clone", "-q", str(workspace), str(clean)], check=True)
    git(clean, "checkout", "-q", head)
    git(clean, "apply", "--check", str(patch))
    git(clean, "apply", str(patch))
    assert pytest_passes(clean)

    # the summary exists and went to the job page
    summary = (out / "luban-summary.md").read_text()
    assert summary.startswith("## add() subtracts") and "calc/ops.py" in summary
    assert summary in run.summary

    # the event log is the --json stream, ending with run_finished
    events = [json.loads(line) for line in (out / "luban-events.jsonl").read_text().splitlines()]
    assert events[0]["type"] == "run_started" and events[-1]["type"] == "run_finished"
    assert events[-1]["exit_code"] == 0
    assert (out / "luban-trajectory.jsonl").is_file()

    # every artifact exists where the upload step looks, and the checkout is not littered
    assert len(run.uploaded) == 4 and all(p.is_file() for p in run.uploaded)
    assert git(workspace, "status", "--porcelain").splitlines() == [" M calc/ops.py"]


def test_a_failed_run_still_uploads_its_reports_then_fails_the_job(tmp_path, workspace, scripted_server):
    plan = call("todo_write", {"todos": [{"content": "think", "status": "in_progress"}]})
    server = scripted_server([turn(plan), turn(plan), turn(plan)])
    run = run_workflow(
        tmp_path,
        workspace,
        "issues",
        issue_event("never finishes", "loop"),
        {"LUBAN_MODEL": "scripted", "LUBAN_BASE_URL": server.base_url, "LUBAN_MAX_STEPS": "2"},
    )
    assert run.step("Run Luban").code == 0  # the exit code is recorded, not raised
    assert run.context["steps"]["luban"]["outputs"]["exit_code"] == "1"
    assert run.step("Add the summary to the job page").status == "ran"
    assert "step limit" in run.summary
    assert run.step("Upload Luban's reports").status == "emulated"
    assert all(p.is_file() for p in run.uploaded)
    final = run.step("Fail the job if Luban did not finish")
    assert final.code == 1 and "Luban exited with 1" in final.stdout
    out = Path(run.context["runner"]["temp"]) / "luban"
    events = (out / "luban-events.jsonl").read_text().splitlines()
    assert json.loads(events[-1])["type"] == "run_finished" and json.loads(events[-1])["exit_code"] == 1


def test_a_configuration_error_exits_2_and_fails_the_job(tmp_path, workspace):
    run = run_workflow(tmp_path, workspace, "issues", issue_event("t", "b"), {"LUBAN_MODEL": "scripted"})
    assert run.context["steps"]["luban"]["outputs"]["exit_code"] == "2"
    assert "no base URL" in run.step("Run Luban").stderr
    assert "Luban wrote no summary" in run.summary
    final = run.step("Fail the job if Luban did not finish")
    assert final.code == 2 and "Luban exited with 2" in final.stdout


def test_workflow_dispatch_uses_the_task_input(tmp_path, workspace, scripted_server):
    server = scripted_server([turn(call("finish", {"message": "nothing to do"}))])
    event = {"inputs": {"task": "Explain calc/ops.py\n\nno changes needed"}}
    run = run_workflow(
        tmp_path,
        workspace,
        "workflow_dispatch",
        event,
        {"LUBAN_MODEL": "scripted", "LUBAN_BASE_URL": server.base_url},
    )
    assert run.step("Fail the job if Luban did not finish").code == 0
    out = Path(run.context["runner"]["temp"]) / "luban"
    assert (out / "task.md").read_text() == "Explain calc/ops.py\n\nno changes needed\n"
    assert run.context["steps"]["task"]["outputs"]["title"] == "Explain calc/ops.py"
    assert (out / "luban.patch").read_text() == ""
    assert "No changes." in (out / "luban-summary.md").read_text()


def test_an_empty_task_fails_before_luban_runs(tmp_path, workspace):
    run = run_workflow(tmp_path, workspace, "workflow_dispatch", {"inputs": {"task": "  "}}, {})
    assert run.step("Write the task").code != 0
    assert "the task is empty" in run.step("Write the task").stderr
    assert run.step("Run Luban").status == "skipped"
    final = run.step("Fail the job if Luban did not finish")
    assert final.code == 1 and "Luban did not run" in final.stdout
