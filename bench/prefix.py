"""Prompt size per step and prompt-cache friendliness on a scripted 30-step run.

Providers (Moonshot, DashScope, DeepSeek, vLLM, SGLang) cache the longest prefix a request shares
with an earlier one; a request that rewrites earlier messages pays full price and latency again.
This runs the real agent with the real openai client against the scripted server, takes the exact
JSON bodies the server received, and prints per step the prompt size (tokens estimated at
3.2 characters per token, and as the server counted them) and the share of the request's messages
and tools, as serialised on the wire, that is byte-identical to the previous request's.

    python bench/prefix.py [--steps 30]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agent.config import Settings  # noqa: E402
from agent.context import CHARS_PER_TOKEN  # noqa: E402
from agent.session import Session  # noqa: E402
from agent.testing.scripted_server import ScriptedServer  # noqa: E402


def script(steps: int) -> list[dict]:
    """A realistic mix: plan, search, view, edit, run commands and tests."""
    cycle = [
        {"name": "todo_write", "arguments": {"todos": [{"content": "explore", "status": "in_progress"}]}},
        {"name": "search", "arguments": {"pattern": "def ", "path": "."}},
        {"name": "str_replace_editor", "arguments": {"command": "view", "path": "mod.py"}},
        {"name": "execute_bash", "arguments": {"command": "ls -la && python3 -c 'print(40 * \"x\")'"}},
        {"name": "think", "arguments": {"thought": "The function returns the wrong value for empty input."}},
    ]
    turns = [{"content": "Next step.", "tool_calls": [cycle[i % len(cycle)]]} for i in range(steps - 1)]
    return [*turns, {"tool_calls": [{"name": "finish", "arguments": {"message": "done"}}]}]


def common_prefix(a: str, b: str) -> int:
    n = min(len(a), len(b))
    lo, hi = 0, n  # binary search on equal prefixes: fast on long strings
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=30)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "repo"
        repo.mkdir()
        (repo / "mod.py").write_text("".join(f"def f{i}(x):\n    return x + {i}\n\n" for i in range(40)))
        with ScriptedServer(script(args.steps)) as server:
            settings = Settings(model="bench", base_url=server.base_url, max_steps=args.steps + 5)
            session = Session(
                settings, repo, "Fix f3 for empty input.", trajectory_path=Path(tmp) / "t.jsonl"
            )
            outcome = asyncio.run(session.run())
            bodies = [r["body"] for r in server.requests]
    assert outcome.finished.reason == "finished", outcome.finished

    print(f"{'step':>4} {'prompt tok (est)':>17} {'server count':>13} {'prefix reused':>14}")
    shares = []
    previous = None
    for i, body in enumerate(bodies, 1):
        wire = json.dumps({"tools": body.get("tools"), "messages": body["messages"]}, ensure_ascii=False)
        share = None
        if previous is not None:
            share = common_prefix(previous, wire) / len(previous)
            shares.append(share)
        served = outcome.loop.prompt_tokens_sent[i - 1] if i - 1 < len(outcome.loop.prompt_tokens_sent) else 0
        print(
            f"{i:>4} {int(len(wire) / CHARS_PER_TOKEN):>17} {served:>13} {'' if share is None else f'{share:.1%}':>14}"
        )
        previous = wire
    print(
        f"\nprefix reuse over {len(shares)} follow-up requests: median {statistics.median(shares):.1%}, "
        f"min {min(shares):.1%} (aim > 95%)"
    )


if __name__ == "__main__":
    main()
