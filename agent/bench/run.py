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
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Literal

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


async def run_instances(
    instances: Iterable[Instance],
    settings,
    out: Path,
    *,
    workers: int = 1,
    repo_cache: Path | None = None,
    allow_network: bool = False,
    on_result: Callable[[InstanceResult], None] | None = None,
) -> list[InstanceResult]:
    """Run every instance not yet in ``out/predictions.jsonl``, at most ``workers`` at a time.
    Results come back in the order of ``instances``; ``on_result`` sees each as it finishes."""
    from agent.bench.workspace import prepare_workspace
    from agent.session import Session

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
    semaphore = asyncio.Semaphore(max(1, workers))
    write_lock = asyncio.Lock()

    def report(result: InstanceResult) -> InstanceResult:
        if on_result is not None:
            on_result(result)
        return result

    async def record(result: InstanceResult, patch: str | None) -> InstanceResult:
        async with write_lock:
            if patch is not None:
                prediction = {
                    "instance_id": result.instance_id,
                    "model_name_or_path": model_name,
                    "model_patch": patch,
                }
                await asyncio.to_thread(_append_line, predictions, prediction)
            await asyncio.to_thread(_append_line, results_path, asdict(result))
        return report(result)

    async def one(inst: Instance) -> InstanceResult:
        iid = inst.instance_id
        if iid in already:
            return report(InstanceResult(iid, "skipped", "already in predictions.jsonl", None, 0, 0.0, 0.0))
        async with semaphore:
            started = time.monotonic()
            ws = out / "workspaces" / iid
            traj = out / "trajectories" / f"{iid}.jsonl"

            def failed(reason: str, exc: BaseException | str) -> InstanceResult:
                msg = exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}"
                return InstanceResult(iid, "error", reason, None, 0, time.monotonic() - started, 0.0, msg)

            try:
                if ws.exists():  # left by an interrupted run
                    await asyncio.to_thread(shutil.rmtree, ws)
                await asyncio.to_thread(
                    prepare_workspace, inst, ws, repo_cache=repo_cache, allow_network=allow_network
                )
            except Exception as exc:
                return await record(failed("workspace", str(exc)), None)
            try:
                session = Session(settings, ws, task_prompt(inst), trajectory_path=traj)
                outcome = await session.run()
                patch = await asyncio.to_thread(session.patch)
            except Exception as exc:
                return await record(failed("exception", exc), None)
            f = outcome.finished
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
            )
            # a failed run is retried by the next run, so it gets no prediction
            return await record(result, None if result.status == "error" else patch)

    return list(await asyncio.gather(*(one(inst) for inst in instances)))


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
    from agent.bench.instances import InstanceError, load_instances
    from agent.config import load_settings

    if args.out is None:
        print("luban: bench run needs --out DIR", file=sys.stderr)
        return 2
    if args.workers < 1:
        print("luban: --workers must be at least 1", file=sys.stderr)
        return 2
    try:
        instances = load_instances(Path(args.instances).expanduser(), ids=args.ids, slice_=args.slice)
    except InstanceError as exc:
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
        results = asyncio.run(
            run_instances(
                instances,
                settings,
                out,
                workers=args.workers,
                repo_cache=repo_cache,
                allow_network=args.network,
                on_result=progress,
            )
        )
    except KeyboardInterrupt:
        print(summary_line(finished, time.monotonic() - started, out), file=sys.stderr)
        print("luban: interrupted; finished instances are saved, run again to resume", file=sys.stderr)
        return 130
    print(summary_line(results, time.monotonic() - started, out), file=sys.stderr)
    return 1 if any(r.status == "error" for r in results) else 0
