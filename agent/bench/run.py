"""`luban bench run`: run the agent on SWE-bench-style instances and write a predictions file.

Per instance: a fresh workspace at ``base_commit`` (``out/workspaces/<id>``), a headless Session
whose task is ``prompt.md`` filled with the problem statement only (never ``hints_text``,
``test_patch`` or ``patch``), its trajectory in ``out/trajectories/<id>.jsonl``, then one line in
``out/predictions.jsonl`` (the SWE-bench harness input) and one in ``out/results.jsonl``.

Instances already in ``predictions.jsonl`` are skipped, so an interrupted run resumes where it
stopped. Instances that errored (no workspace, model failure, a crash) get no prediction and are
retried by the next run.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from agent.bench.instances import Instance

PREDICTIONS = "predictions.jsonl"
RESULTS = "results.jsonl"
ERROR_REASONS = ("model_error", "error")  # session stop reasons that count as a failed instance


@dataclass
class InstanceResult:
    instance_id: str
    status: Literal["done", "error", "skipped"]
    reason: str  # the session's stop reason (finished, max_steps, ...), or what went wrong
    exit_code: int | None
    patch_lines: int
    duration: float
    cost: float
    error: str = ""
    steps: int = 0
    timings: dict = field(default_factory=dict)  # seconds: workspace, environment, agent
    notes: list = field(default_factory=list)  # what the environment could not do as the spec says


def task_prompt(instance: Instance) -> str:
    """The agent's task: the problem statement, and nothing else from the instance."""
    template = resources.files("agent.bench").joinpath("prompt.md").read_text(encoding="utf-8")
    return template.format(problem_statement=instance.problem_statement.strip())


def _repair_jsonl(path: Path) -> None:
    """A crash mid-write can leave a last line without its newline: drop it if it is not valid
    JSON (the instance is then re-run), finish it if it is."""
    if not path.is_file():
        return
    data = path.read_bytes()
    if not data or data.endswith(b"\n"):
        return
    cut = data.rfind(b"\n") + 1
    tail = data[cut:]
    try:
        json.loads(tail)
    except ValueError:
        with open(path, "r+b") as f:
            f.truncate(cut)
        return
    with open(path, "ab") as f:
        f.write(b"\n")


def predicted_ids(path: Path) -> set[str]:
    """Instance ids with a complete prediction line in ``path``."""
    done: set[str] = set()
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return done
    for line in text.splitlines():
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict) and isinstance(obj.get("instance_id"), str):
            done.add(obj["instance_id"])
    return done


def _append_line(path: Path, obj: dict) -> None:
    line = json.dumps(obj, ensure_ascii=False) + "\n"
    with open(path, "a", encoding="utf-8", errors="surrogateescape") as f:
        f.write(line)
        f.flush()
        os.fsync(f.fileno())


@dataclass(frozen=True)
class RunJob:
    """One instance's run, picklable so it can go to another process or a Ray node (``out`` must then
    be on a shared file system: the trajectory is written there by the worker)."""

    instance: Instance
    settings: Any
    out: Path
    repo_cache: Path | None = None
    allow_network: bool = False
    env_mode: str = "none"  # "venv": build the instance's environment first; "none": this machine's
    env_options: Any = None  # EnvOptions for env_mode "venv"
    specs_file: Path | None = None


def run_one(job: RunJob) -> tuple[InstanceResult, str | None]:
    """Workspace, environment, agent for one instance: (result, patch or None when it failed)."""
    from agent.bench.workspace import prepare_workspace
    from tools.environment import LocalEnvironment

    inst, out = job.instance, Path(job.out)
    iid = inst.instance_id
    started = time.monotonic()
    ws = out / "workspaces" / iid
    traj = out / "trajectories" / f"{iid}.jsonl"
    timings: dict[str, float] = {}

    def failed(reason: str, exc: BaseException | str) -> tuple[InstanceResult, None]:
        msg = exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}"
        return InstanceResult(iid, "error", reason, None, 0, time.monotonic() - started, 0.0, msg,
                              timings=_rounded(timings)), None  # fmt: skip

    t = time.monotonic()
    try:
        if ws.exists():  # left by an interrupted run
            shutil.rmtree(ws)
        prepare_workspace(inst, ws, repo_cache=job.repo_cache, allow_network=job.allow_network)
    except Exception as exc:
        return failed("workspace", str(exc))
    timings["workspace"] = time.monotonic() - t

    extra_env: dict[str, str] = {}
    notes: list[str] = []
    if job.env_mode == "venv":
        from agent.bench.environment import EnvBuildError, prepare_env
        from agent.bench.specs import load_specs, spec_for

        t = time.monotonic()
        try:
            spec = spec_for(inst, load_specs(job.specs_file))
            built = prepare_env(ws, inst, spec, out / "venvs" / iid, job.env_options)
        except (EnvBuildError, OSError, ValueError) as exc:
            return failed("environment", str(exc))
        extra_env, notes = built.env_vars(), built.notes
        timings["environment"] = time.monotonic() - t

    t = time.monotonic()
    try:
        patch, f = asyncio.run(_agent(job, ws, traj, LocalEnvironment(ws, extra_env=extra_env)))
    except Exception as exc:
        return failed("exception", exc)
    timings["agent"] = time.monotonic() - t
    result = InstanceResult(
        instance_id=iid,
        status="error" if f.reason in ERROR_REASONS else "done",
        reason=f.reason,
        exit_code=f.exit_code,
        patch_lines=len(patch.splitlines()),
        duration=time.monotonic() - started,
        cost=f.cost,
        error=f.message if f.reason in ERROR_REASONS else "",
        steps=f.steps,
        timings=_rounded(timings),
        notes=notes,
    )
    # a failed run is retried by the next run, so it gets no prediction
    return result, (None if result.status == "error" else patch)


async def _agent(job: RunJob, ws: Path, traj: Path, env):
    from agent.session import Session

    session = Session(job.settings, ws, task_prompt(job.instance), trajectory_path=traj, env=env)
    outcome = await session.run()
    patch = await asyncio.to_thread(session.patch)
    return patch, outcome.finished


def _rounded(timings: dict[str, float]) -> dict[str, float]:
    return {k: round(v, 3) for k, v in timings.items()}


def run_instances(
    instances: Iterable[Instance],
    settings,
    out: Path,
    *,
    workers: int = 1,
    executor: str = "thread",
    address: str | None = None,
    memory_limit_mb: int | None = None,
    repo_cache: Path | None = None,
    allow_network: bool = False,
    env_mode: str = "none",
    env_options=None,
    specs_file: Path | None = None,
    on_result: Callable[[InstanceResult], None] | None = None,
) -> list[InstanceResult]:
    """Run every instance not yet in ``out/predictions.jsonl`` on ``executor`` with ``workers`` at
    once. Results come back in the order of ``instances``; ``on_result`` sees each as it finishes.
    Predictions and results are written here, by the caller's process, as instances finish."""
    from agent.bench.executors import run_jobs

    instances = list(instances)
    out = Path(out)
    for sub in ("workspaces", "trajectories"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    predictions, results_path = out / PREDICTIONS, out / RESULTS
    _repair_jsonl(predictions)
    _repair_jsonl(results_path)
    already = predicted_ids(predictions)
    settings = settings.model_copy(update={"approval": "full-auto", "checkpoints": False})
    model_name = settings.model or "luban"

    results: dict[str, InstanceResult] = {}

    def report(result: InstanceResult) -> None:
        results[result.instance_id] = result
        if on_result is not None:
            on_result(result)

    todo = []
    for inst in instances:
        if inst.instance_id in already:
            report(
                InstanceResult(inst.instance_id, "skipped", "already in predictions.jsonl", None, 0, 0.0, 0.0)
            )
        else:
            todo.append(RunJob(inst, settings, out.resolve(), repo_cache, allow_network, env_mode, env_options,
                               specs_file))  # fmt: skip

    def done(index: int, value, exc: BaseException | None) -> None:
        if exc is not None:  # the worker itself failed (died, lost): the instance is retried next run
            iid = todo[index].instance.instance_id
            value = (
                InstanceResult(iid, "error", "worker", None, 0, 0.0, 0.0, f"{type(exc).__name__}: {exc}"),
                None,
            )
        result, patch = value
        if patch is not None:
            _append_line(
                predictions,
                {"instance_id": result.instance_id, "model_name_or_path": model_name, "model_patch": patch},
            )
        _append_line(results_path, asdict(result))
        report(result)

    run_jobs(run_one, todo, executor=executor, workers=workers, address=address,
             memory_limit_mb=memory_limit_mb, on_done=done)  # fmt: skip
    return [results[i.instance_id] for i in instances if i.instance_id in results]


def format_result(n: int, total: int, r: InstanceResult) -> str:
    head = f"[{n}/{total}] {r.instance_id} {r.status}"
    if r.status == "error":
        return f"{head} ({r.reason}, {r.duration:.1f}s): {r.error}"
    return (
        f"{head} ({r.reason}, {r.steps} steps, {r.patch_lines} patch lines, {r.duration:.1f}s, ${r.cost:.4f})"
    )


def summary_line(results: list[InstanceResult], wall: float, out: Path) -> str:
    count = {s: sum(r.status == s for r in results) for s in ("done", "error", "skipped")}
    cost = sum(r.cost for r in results)
    return (
        f"bench: {count['done']} done, {count['error']} error, {count['skipped']} skipped; "
        f"cost ${cost:.4f}; wall {wall:.1f}s; predictions in {out / PREDICTIONS}"
    )


def cmd_bench_run(args) -> int:
    from agent.bench.executors import ExecutorError
    from agent.bench.instances import InstanceError, load_instances
    from agent.bench.options import env_cache_dir, validate_common
    from agent.bench.specs import SpecError, load_specs
    from agent.config import load_settings

    if args.out is None:
        print("luban: bench run needs --out DIR", file=sys.stderr)
        return 2
    problem = validate_common(args)
    if problem:
        print(f"luban: {problem}", file=sys.stderr)
        return 2
    try:
        instances = load_instances(Path(args.instances).expanduser(), ids=args.ids, slice_=args.slice)
        specs_file = Path(args.specs).expanduser().resolve() if args.specs else None
        if specs_file is not None:
            load_specs(specs_file)  # a broken specs file fails here, once, not in every instance
    except (InstanceError, SpecError) as exc:
        print(f"luban: {exc}", file=sys.stderr)
        return 2
    flags = {
        k: getattr(args, k)
        for k in ("model", "provider", "base_url", "api_key_env", "max_steps", "max_cost", "max_time")
    }
    settings = load_settings(Path.cwd(), flags)  # ConfigError: the caller prints it (exit 2)
    out = Path(args.out).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    repo_cache = Path(args.repo_cache).expanduser().resolve() if args.repo_cache else None
    env_options = None
    if args.env == "venv":
        from agent.bench.environment import EnvOptions

        env_options = EnvOptions(
            cache_dir=env_cache_dir(args), python=args.python, date_pin=not args.no_date_pin
        )

    finished: list[InstanceResult] = []
    skipped = len(predicted_ids(out / PREDICTIONS) & {i.instance_id for i in instances})
    total = len(instances) - skipped
    if skipped:
        print(f"bench: skipping {skipped} instance(s) already in {out / PREDICTIONS}", file=sys.stderr)

    def progress(r: InstanceResult) -> None:
        finished.append(r)
        if r.status != "skipped":
            n = sum(x.status != "skipped" for x in finished)
            print(format_result(n, total, r), file=sys.stderr, flush=True)

    started = time.monotonic()
    try:
        results = run_instances(
            instances,
            settings,
            out,
            workers=args.workers,
            executor=args.executor,
            address=args.address,
            memory_limit_mb=args.memory_limit,
            repo_cache=repo_cache,
            allow_network=args.network,
            env_mode=args.env,
            env_options=env_options,
            specs_file=specs_file,
            on_result=progress,
        )
    except ExecutorError as exc:
        print(f"luban: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(summary_line(finished, time.monotonic() - started, out), file=sys.stderr)
        print("luban: interrupted; finished instances are saved, run again to resume", file=sys.stderr)
        return 130
    print(summary_line(results, time.monotonic() - started, out), file=sys.stderr)
    return 1 if any(r.status == "error" for r in results) else 0
