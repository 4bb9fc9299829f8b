"""Overhead and throughput of SWE-bench-style evaluation runs (`luban bench run` + `luban bench grade`).

Synthetic instances (tests/bench/synth.py: a tiny installable package with a bug, its bare mirror in
a local repo cache) go through the real pipeline in this process, on the thread executor:

  run    workspace    clone --shared of the mirror at base_commit, the future hidden
         environment  base venv (pip + pytest; built once, then cached) + the instance's overlay
                      venv + the project's install (pip install -e .)
         agent        a real Session against the scripted OpenAI-compatible server on 127.0.0.1 (in a
                      thread here): run a command, edit, finish; so the time is Luban's own per step
                      (framework, trajectory, tools, git diff), not a model's latency
  grade  workspace, environment (overlay only), patch (apply as the harness does), eval script
         (install + tests between the markers), swebench grading (get_eval_report, logs)

First one instance with an empty environment cache (the cold base venv build, once per repo/version),
then N instances with the cache warm at each worker count, side by side: per-instance phases (median
and max at 1 worker, median at the most workers) and throughput (instances per minute, speed-up vs 1
worker). pip reaches PyPI for pytest/setuptools; everything else stays in a temp dir.

    python bench/swebench.py [--instances 4] [--workers 1,2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# this file's folder comes off the path: its name would shadow the `swebench` package grading imports
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))
_HOME = tempfile.TemporaryDirectory(prefix="luban-bench-home-")
os.environ["LUBAN_HOME"] = _HOME.name  # never the user's config, sessions or caches

import agent.bench.environment as environment  # noqa: E402
import agent.session as session_module  # noqa: E402
from agent.bench.environment import EnvOptions  # noqa: E402
from agent.bench.executors import run_jobs  # noqa: E402
from agent.bench.grade import GradeJob, GradeResult, grade_one, load_predictions  # noqa: E402
from agent.bench.instances import load_instances  # noqa: E402
from agent.bench.run import InstanceResult, run_instances  # noqa: E402
from agent.config import load_settings  # noqa: E402
from agent.testing.scripted_server import ScriptedServer  # noqa: E402
from tests.bench import synth  # noqa: E402

TURNS_PER_INSTANCE = 3

# -------------------------------------------------------------- observation (no behaviour changes)
# prepare_env's own split (base / overlay venv / install) and the agent loop's model and tool time
# are not in the results; they are recorded here, keyed by the workspace path.
ENV_SPLIT: dict[str, dict[str, Any]] = {}
LOOP_SPLIT: dict[str, dict[str, float]] = {}
_prepare_env = environment.prepare_env


def _recording_prepare_env(ws, inst, spec, venv, opts, *, install=True):
    built = _prepare_env(ws, inst, spec, venv, opts, install=install)
    ENV_SPLIT[str(Path(ws).resolve())] = {**built.timings, "cached": built.base_cached}
    return built


class _TimedSession(session_module.Session):
    async def run(self):
        outcome = await super().run()
        t = outcome.loop.timings if outcome.loop else []
        LOOP_SPLIT[str(self.repo)] = {
            "model": sum(s.model for s in t),
            "tools": sum(s.tools for s in t),
            "steps": len(t),
        }
        return outcome


environment.prepare_env = _recording_prepare_env  # run_one / grade_one import it when called
session_module.Session = _TimedSession


# ------------------------------------------------------------------------------------ one pass


def do_run(instances, settings, server, out: Path, repo_cache: Path, env_cache: Path, workers: int):
    server.extend([synth.agent_turn] * (TURNS_PER_INSTANCE * len(instances)))
    t = time.perf_counter()
    results = run_instances(
        instances,
        settings,
        out,
        workers=workers,
        executor="thread",
        repo_cache=repo_cache,
        env_mode="venv",
        env_options=EnvOptions(cache_dir=env_cache, date_pin=True),
    )
    return results, time.perf_counter() - t


def do_grade(instances, out: Path, graded: Path, repo_cache: Path, env_cache: Path, workers: int):
    preds = load_predictions(out / "predictions.jsonl")
    jobs = [
        GradeJob(
            instance=inst,
            prediction=preds[inst.instance_id],
            log_dir=graded / "logs" / inst.instance_id,
            work_dir=graded / "work" / inst.instance_id,
            repo_cache=repo_cache,
            allow_network=False,
            specs_file=None,
            env_cache=env_cache,
        )
        for inst in instances
        if inst.instance_id in preds
    ]
    t = time.perf_counter()
    results = run_jobs(grade_one, jobs, executor="thread", workers=workers)
    return [r for r in results if isinstance(r, GradeResult)], time.perf_counter() - t


def run_phases(out: Path, r: InstanceResult) -> dict[str, float]:
    ws = str((out / "workspaces" / r.instance_id).resolve())
    env = ENV_SPLIT.get(ws, {})
    loop = LOOP_SPLIT.get(ws, {})
    agent = r.timings.get("agent", 0.0)
    steps = loop.get("steps") or r.steps or 1
    own = agent - loop.get("model", 0.0) - loop.get("tools", 0.0)
    return {
        "workspace": r.timings.get("workspace", 0.0),
        "env base": env.get("base", 0.0),
        "env overlay": env.get("venv", 0.0),
        "env install": env.get("install", 0.0),
        "env total": r.timings.get("environment", 0.0),
        "agent total": agent,
        "agent model": loop.get("model", 0.0),
        "agent tools": loop.get("tools", 0.0),
        "agent luban": own,
        "luban/step": own / steps,
        "run total": r.duration,
    }


def grade_phases(g: GradeResult) -> dict[str, float]:
    t = g.timings
    known = sum(t.get(k, 0.0) for k in ("workspace", "environment", "patch", "tests"))
    return {
        "g workspace": t.get("workspace", 0.0),
        "g environment": t.get("environment", 0.0),
        "g patch": t.get("patch", 0.0),
        "g eval script": t.get("tests", 0.0),
        "g swebench": t.get("total", 0.0) - known,
        "grade total": t.get("total", 0.0),
    }


LABELS = {
    "workspace": "run  workspace (clone --shared, checkout)",
    "env base": "     env: base venv lookup (cached)",
    "env overlay": "     env: overlay venv",
    "env install": "     env: project install (pip -e .)",
    "env total": "     environment total",
    "agent total": "     agent total",
    "agent model": "       model calls (local HTTP)",
    "agent tools": "       tools (bash, edit)",
    "agent luban": "       Luban itself (all the rest)",
    "luban/step": "       Luban itself per step",
    "run total": "     run total",
    "g workspace": "grade workspace",
    "g environment": "      environment (overlay)",
    "g patch": "      patch apply",
    "g eval script": "      eval script (install + tests)",
    "g swebench": "      swebench grading + logs",
    "grade total": "      grade total",
}


def fmt(v: float) -> str:
    return f"{v:8.3f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--instances", type=int, default=4, help="instances per throughput pass (default 4)")
    ap.add_argument("--workers", default="1,2", help="worker counts, comma-separated (default 1,2)")
    args = ap.parse_args()
    workers = sorted({int(w) for w in args.workers.split(",") if w.strip()} | {1})

    print(__doc__.split("\n\n    python")[0].split("\n", 1)[0])
    print(
        f"{args.instances} synthetic instances per pass, workers {', '.join(map(str, workers))}, "
        f"thread executor, {os.cpu_count()} CPUs; times in seconds\n"
    )
    with tempfile.TemporaryDirectory(prefix="luban-bench-swe-") as tmp:
        root = Path(tmp).resolve()
        repo_cache, base, patches = synth.make_mirror(root / "src")
        env_cache = root / "envs"
        rows = [synth.instance(f"acme__shapes-{i}", base, patches) for i in range(args.instances)]
        instances = load_instances(synth.write_jsonl(root / "instances.jsonl", rows))
        cold_inst = load_instances(
            synth.write_jsonl(root / "cold.jsonl", [synth.instance("acme__shapes-cold", base, patches)])
        )
        (root / "cfg").mkdir()
        with ScriptedServer([]) as server:
            settings = load_settings(root / "cfg", {"model": "scripted", "base_url": server.base_url})

            # cold: the first instance ever, with an empty environment cache
            out = root / "cold"
            t = time.perf_counter()
            (cold,), _ = do_run(cold_inst, settings, server, out, repo_cache, env_cache, 1)
            cold_wall = time.perf_counter() - t
            cold_env = ENV_SPLIT.get(str((out / "workspaces" / cold.instance_id).resolve()), {})
            (cold_grade,), _ = do_grade(cold_inst, out, root / "cold-graded", repo_cache, env_cache, 1)

            passes: dict[int, dict[str, Any]] = {}
            for w in workers:
                out = root / f"run-w{w}"
                results, run_wall = do_run(instances, settings, server, out, repo_cache, env_cache, w)
                grades, grade_wall = do_grade(instances, out, root / f"graded-w{w}", repo_cache, env_cache, w)
                passes[w] = {
                    "run": [run_phases(out, r) for r in results if r.status == "done"],
                    "grade": [grade_phases(g) for g in grades],
                    "run_wall": run_wall,
                    "grade_wall": grade_wall,
                    "done": sum(r.status == "done" for r in results),
                    "resolved": sum(g.status == "resolved" for g in grades),
                    "errors": [
                        f"{r.instance_id}: {r.reason} {r.error}" for r in results if r.status == "error"
                    ]
                    + [f"{g.instance_id}: {g.status} {g.error}" for g in grades if g.status != "resolved"],
                }
            if server.errors:
                print("scripted server errors:\n" + "\n".join(server.errors))

    # ------------------------------------------------------------------------------------ report
    print("Cold start (first instance, empty environment cache)")
    print(f"  base venv build (venv + pip upgrade + pytest): {cold_env.get('base', 0.0):7.2f}")
    print(
        f"  overlay venv {cold_env.get('venv', 0.0):.2f}, project install {cold_env.get('install', 0.0):.2f}"
    )
    print(
        f"  run total {cold.duration:.2f} (workspace {cold.timings.get('workspace', 0):.2f}, "
        f"agent {cold.timings.get('agent', 0):.2f}); wall {cold_wall:.2f}; "
        f"grade total {cold_grade.timings.get('total', 0):.2f} ({cold_grade.status}; "
        "includes importing swebench)"
    )

    top = max(workers)
    one = passes[1]
    print(f"\nPer instance, environment cache warm ({args.instances} instances)")
    head = f"{'phase':<44}{'median':>9}{'max':>9}"
    if top != 1:
        head += f"{'median':>13}"
    print(f"{'':<44}{'1 worker':>18}" + (f"{f'{top} workers':>13}" if top != 1 else ""))
    print(head)
    for kind in ("run", "grade"):
        for key in one[kind][0] if one[kind] else []:
            vals = [p[key] for p in one[kind]]
            line = f"{LABELS[key]:<44} {fmt(statistics.median(vals))} {fmt(max(vals))}"
            if top != 1 and passes[top][kind]:
                line += f"     {fmt(statistics.median(p[key] for p in passes[top][kind]))}"
            print(line)

    print(f"\nThroughput ({args.instances} instances per pass, thread executor)")
    print(
        f"{'workers':>7}{'run wall':>10}{'inst/min':>10}{'speed-up':>10}"
        f"{'grade wall':>12}{'inst/min':>10}{'speed-up':>10}{'done':>6}{'resolved':>10}"
    )
    base_run = args.instances / one["run_wall"] * 60
    base_grade = args.instances / one["grade_wall"] * 60
    for w in workers:
        p = passes[w]
        run_ipm = args.instances / p["run_wall"] * 60
        grade_ipm = args.instances / p["grade_wall"] * 60
        print(
            f"{w:>7}{p['run_wall']:>10.2f}{run_ipm:>10.1f}{run_ipm / base_run:>9.2f}x"
            f"{p['grade_wall']:>12.2f}{grade_ipm:>10.1f}{grade_ipm / base_grade:>9.2f}x"
            f"{p['done']:>6}{p['resolved']:>10}"
        )
    for w in workers:
        for e in passes[w]["errors"]:
            print(f"  ({w} workers) not resolved: {e}")

    if one["run"] and one["grade"]:
        run_med = {k: statistics.median(p[k] for p in one["run"]) for k in one["run"][0]}
        grade_med = {k: statistics.median(p[k] for p in one["grade"]) for k in one["grade"][0]}
        parts = {  # disjoint: they add up to the total but for bookkeeping between phases
            "workspaces (run + grade)": run_med["workspace"] + grade_med["g workspace"],
            "base lookup + overlay venvs (run + grade)": run_med["env total"]
            - run_med["env install"]
            + grade_med["g environment"],
            "project install (run)": run_med["env install"],
            "eval script: reinstall + tests (grade)": grade_med["g eval script"],
            "agent": run_med["agent total"],
            "patch apply + swebench grading": grade_med["g patch"] + grade_med["g swebench"],
        }
        total = run_med["run total"] + grade_med["grade total"]
        print(f"\nmedian run + grade per instance (1 worker): {total:.2f} s, of which")
        for name, v in sorted(parts.items(), key=lambda kv: -kv[1]):
            print(f"  {name:<44}{v:7.2f} s  {100 * v / total:5.1f}%")
        print(
            f"Luban's own time per agent step: {run_med['luban/step'] * 1000:.1f} ms "
            f"(agent total minus model calls and tools: session set-up, loop, trajectory, final git diff; {TURNS_PER_INSTANCE} steps)"
        )


if __name__ == "__main__":
    main()
