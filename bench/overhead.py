"""Framework overhead per agent step, and `luban --help` start-up time.

Runs the real Session (LangGraph graph, tool registry, events, trajectory written to disk) for
N steps, each a `think` tool call, and reports per step:

  framework  = wall time of the step - time inside the model call - time inside the tools
  client     = time inside the model call (openai SDK + HTTP to the local scripted server)

measured from one model-node start to the next, so LangGraph's own supersteps are included.
Two model back ends are timed side by side in one run: the real OpenAI client against the
scripted server on 127.0.0.1 (zero latency), and an in-process scripted model (no HTTP), which
isolates the framework from the client.

    python bench/overhead.py [--steps 50 200 800] [--help-runs 15]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agent.config import Settings  # noqa: E402
from agent.session import Session  # noqa: E402
from agent.testing.scripted_model import ScriptedModel  # noqa: E402


def script(steps: int) -> list[dict]:
    turns = [
        {
            "tool_calls": [
                {"name": "think", "arguments": {"thought": f"step {i}: " + "consider the code " * 8}}
            ]
        }
        for i in range(steps - 1)
    ]
    return [*turns, {"tool_calls": [{"name": "finish", "arguments": {"message": "done"}}]}]


def run_session(steps: int, backend: str, workdir: Path) -> dict:
    repo = workdir / f"repo-{backend}-{steps}"
    repo.mkdir()
    (repo / "a.txt").write_text("x\n")
    traj = workdir / f"{backend}-{steps}.jsonl"
    server = None
    if backend == "http":
        # The server runs in its own process, as a real one would: a thread here would compete
        # for the GIL and its work would be counted as framework time.
        script_file = workdir / f"script-{steps}.json"
        script_file.write_text(json.dumps(script(steps)))
        server = subprocess.Popen(
            [sys.executable, "-m", "agent.testing.scripted_server", str(script_file)],
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        base_url = server.stdout.readline().strip()
        settings = Settings(model="bench", base_url=base_url, max_steps=steps + 5, max_time=None)
        session = Session(settings, repo, "benchmark", trajectory_path=traj)
    else:
        settings = Settings(model="in-process", max_steps=steps + 5, max_time=None)
        session = Session(
            settings,
            repo,
            "benchmark",
            model=ScriptedModel(script(steps), name="in-process"),
            trajectory_path=traj,
        )
    try:
        outcome = asyncio.run(session.run())
    finally:
        if server:
            server.terminate()
            server.wait()
    assert outcome.finished.reason == "finished", outcome.finished
    t = outcome.loop.timings
    framework, client = [], []
    for cur, nxt in zip(t, t[1:], strict=False):
        wall = nxt.start - cur.start
        framework.append((wall - cur.model - cur.tools) * 1000)
        client.append(cur.model * 1000)
    return {"framework": framework, "client": client, "traj_bytes": traj.stat().st_size}


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(int(q * len(values)), len(values) - 1)]


def help_time(runs: int) -> tuple[float, float]:
    luban = [sys.executable, "-m", "agent.cli", "--help"]
    bare = [sys.executable, "-c", "pass"]

    def median_ms(cmd: list[str]) -> float:
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            subprocess.run(cmd, stdout=subprocess.DEVNULL, check=True, cwd=ROOT)
            times.append((time.perf_counter() - t0) * 1000)
        return statistics.median(times)

    return median_ms(luban), median_ms(bare)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, nargs="+", default=[50, 200, 800])
    ap.add_argument("--help-runs", type=int, default=15)
    args = ap.parse_args()

    print("Per-step overhead (ms); framework excludes model-call and tool time; trajectory written to disk")
    print(
        f"{'backend':<11}{'steps':>6}{'fw median':>11}{'fw p95':>9}{'fw 1st¼':>9}{'fw last¼':>10}{'client med':>12}{'client p95':>12}{'traj KiB':>10}"
    )
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for steps in args.steps:
            for backend in ("in-process", "http"):
                r = run_session(steps, backend, Path(tmp))
                results[(backend, steps)] = r
                fw = r["framework"]
                q = max(len(fw) // 4, 1)
                print(
                    f"{backend:<11}{steps:>6}{statistics.median(fw):>11.3f}{pct(fw, 0.95):>9.3f}"
                    f"{statistics.median(fw[:q]):>9.3f}{statistics.median(fw[-q:]):>10.3f}"
                    f"{statistics.median(r['client']):>12.3f}{pct(r['client'], 0.95):>12.3f}{r['traj_bytes'] / 1024:>10.1f}"
                )
    if 200 in args.steps:
        inproc = statistics.median(results[("in-process", 200)]["framework"])
        http = statistics.median(results[("http", 200)]["framework"])
        print(
            f"\nframework time per step at 200 steps: {inproc:.3f} ms with an in-process model, {http:.3f} ms beside"
        )
        print("  the real openai client (aim < 1 ms; mini-swe-agent measured 6.3 ms here)")
    big, small = max(args.steps), min(args.steps)
    if big != small:
        for backend in ("in-process", "http"):
            ratio = statistics.median(results[(backend, big)]["framework"]) / statistics.median(
                results[(backend, small)]["framework"]
            )
            print(
                f"flatness ({backend}): median framework time at {big} steps / at {small} steps = {ratio:.2f}x (1.0 = flat)"
            )

    luban_ms, bare_ms = help_time(args.help_runs)
    print(
        f"\n`luban --help`: {luban_ms:.1f} ms median of {args.help_runs} (bare `python -c pass`: {bare_ms:.1f} ms; aim < 100 ms;"
    )
    print("  mini-swe-agent 220 ms, aider 546 ms on the same machine)")


if __name__ == "__main__":
    main()
