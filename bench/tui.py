"""Terminal UI latency: the live app (headless, Textual's test driver) on the real Session
against the scripted OpenAI-compatible server on 127.0.0.1.

1. Keystroke to first token: from the Enter that sends a task to the first streamed token being
   handed to the transcript (the app's part: session, HTTP, event buffer, flush), and to it being
   applied to the transcript's markdown widget (Textual paints it at its next refresh, at most
   1/60 s later). Measured for the first message of a conversation (a fresh app, Enter one
   second after start as if the task was typed meanwhile: the session opens, records
   checkpoint 0, then calls the model) and for follow-ups in one conversation. The server
   answers with no latency. Keys are delivered the way the terminal driver delivers them.
2. While a long answer streams (default 20,000 tokens of markdown, small chunks with a small
   delay between them):
   - frame time: how long the ~30 fps flush spends handing the buffered events to the
     transcript, side panel and status bar;
   - keystroke latency: a key typed into the prompt every 100 ms, time until the prompt's text
     has it;
   - event-loop lag: how late a 10 ms asyncio sleep wakes up;
   - throughput: tokens per second rendered end to end, against the session alone (no UI).

Numbers only, no asserts.

    python bench/tui.py [--runs 10] [--tokens 20000] [--chunk-delay 0.0002]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agent.config import Settings  # noqa: E402
from agent.testing.scripted_server import ScriptedServer  # noqa: E402
from tests.support import make_repo  # noqa: E402

SIZE = (120, 40)
TYPING = 1.0  # seconds between the app's start and the first Enter
PARAGRAPH = (
    "The failing test calls `add(2, 3)` and expects 5, but the function subtracts its arguments, "
    "so it returns -1. The fix is a one-character change in `calc/ops.py`, after which both tests "
    "pass.\n\n"
)
CODE = "```python\ndef add(a, b):\n    return a + b\n```\n\n"
LIST = "- reproduce the failure\n- fix `add`\n- run the tests again\n\n"


def answer(tokens: int) -> str:
    """About `tokens` tokens (4 characters each) of markdown: paragraphs, code, lists."""
    unit = PARAGRAPH + CODE + PARAGRAPH + LIST
    text = unit * (tokens * 4 // len(unit) + 1)
    return text[: tokens * 4]


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))] if s else float("nan")


def ms(x: float) -> str:
    return f"{1000 * x:8.2f} ms"


def settings(server: ScriptedServer) -> Settings:
    return Settings(model="scripted", base_url=server.base_url, repo_map_tokens=0, max_retries=0)


async def wait_until(condition, timeout: float = 60.0, poll: float = 0.0005) -> None:
    deadline = time.perf_counter() + timeout
    while not condition():
        if time.perf_counter() > deadline:
            raise TimeoutError
        await asyncio.sleep(poll)


def press(app, key: str, char: str | None = None) -> None:
    """A key as the terminal driver delivers it (Pilot.press would also wait for the app to be
    idle, which is not what a user's keystroke does)."""
    from textual import events

    event = events.Key(key, char)
    event.set_sender(app)
    app._driver.send_message(event)


def spy_handed_over(app) -> list[float]:
    """Times at which a batch holding a text delta was handed to the transcript."""
    from agent import events as ev

    seen: list[float] = []
    handle_many = app.transcript.handle_many

    def spy(events: list) -> None:
        if any(isinstance(e, ev.TextDelta) for e in events):
            seen.append(time.perf_counter())
        handle_many(events)

    app.transcript.handle_many = spy
    return seen


async def enter_to_first_token(
    app, pilot, text: str, handed: list[float] | None = None
) -> tuple[float, float]:
    """(Enter to the first token handed to the transcript, Enter to the first token applied)."""
    before = len(app.transcript.blocks)
    handed = handed if handed is not None else spy_handed_over(app)
    handed.clear()
    app.prompt.load_text(text)
    t0 = time.perf_counter()
    press(app, "enter")
    await wait_until(lambda: first_token_applied_after(app, before))
    took = time.perf_counter() - t0
    await wait_until(lambda: not app.busy and not app._buffer)
    await app.transcript.wait_idle()
    return handed[0] - t0, took


def first_token_applied_after(app, before: int) -> bool:
    from tui.widgets.transcript import AssistantBlock

    return any(
        isinstance(b, AssistantBlock) and b.markdown.updates > 0 and b.text
        for b in app.transcript.blocks[before:]
    )


async def bench_first_token(runs: int, tmp: Path) -> dict[str, list[float]]:
    from tui.app import LubanApp

    reply = {"content": "Looking at the failing test now. " * 4, "chunk_size": 8}
    out: dict[str, list[float]] = {"cold_handed": [], "cold": [], "warm_handed": [], "warm": []}
    for i in range(runs):
        server = ScriptedServer([reply]).start()
        try:
            app = LubanApp(settings(server), make_repo(tmp / f"cold{i}"))
            async with app.run_test(size=SIZE) as pilot:
                await asyncio.sleep(TYPING)  # the user types the task meanwhile
                handed, applied = await enter_to_first_token(app, pilot, "why does add fail?")
                out["cold_handed"].append(handed)
                out["cold"].append(applied)
        finally:
            server.stop()
    server = ScriptedServer([reply] * (runs + 1)).start()
    try:
        app = LubanApp(settings(server), make_repo(tmp / "warm"))
        async with app.run_test(size=SIZE) as pilot:
            spy = spy_handed_over(app)
            await enter_to_first_token(app, pilot, "hello", spy)
            for i in range(runs):
                handed, applied = await enter_to_first_token(app, pilot, f"and then? ({i})", spy)
                out["warm_handed"].append(handed)
                out["warm"].append(applied)
    finally:
        server.stop()
    return out


async def session_only(text: str, chunk_size: int, delay: float, tmp: Path) -> float:
    from agent.session import Session

    server = ScriptedServer([{"content": text, "chunk_size": chunk_size, "chunk_delay": delay}]).start()
    try:
        s = Session(settings(server), make_repo(tmp / "alone"), "", subscribers=[lambda e: None])
        t0 = time.perf_counter()
        await s.send("talk")
        took = time.perf_counter() - t0
        await s.close()
        return took
    finally:
        server.stop()


async def bench_streaming(tokens: int, chunk_size: int, delay: float, tmp: Path) -> dict:
    from tui.app import LubanApp

    text = answer(tokens)
    server = ScriptedServer([{"content": text, "chunk_size": chunk_size, "chunk_delay": delay}]).start()
    result: dict = {}
    try:
        app = LubanApp(settings(server), make_repo(tmp / "stream"))
        async with app.run_test(size=SIZE):
            app.prompt.load_text("explain")
            t_start = time.perf_counter()
            press(app, "enter")
            await wait_until(lambda: app.busy)
            keys: list[float] = []
            lags: list[float] = []
            typed = ""

            async def lag_probe() -> None:
                while app.busy:
                    t = time.perf_counter()
                    await asyncio.sleep(0.010)
                    lags.append(time.perf_counter() - t - 0.010)

            probe = asyncio.ensure_future(lag_probe())
            while app.busy:
                ch = "abcdefghijklmnopqrstuvwxyz"[len(typed) % 26]
                typed += ch
                t = time.perf_counter()
                press(app, ch, ch)
                try:
                    await wait_until(lambda typed=typed: app.prompt.text == typed, timeout=30)
                except TimeoutError:
                    break
                keys.append(time.perf_counter() - t)
                await asyncio.sleep(0.1)
            streamed = time.perf_counter() - t_start
            await app.transcript.wait_idle()
            rendered = time.perf_counter() - t_start
            await probe
            result = {
                "frames": list(app.frame_times),
                "keys": keys,
                "lags": lags,
                "streamed": streamed,
                "rendered": rendered,
                "chars": len(text),
                "frames_n": len(app.frame_times),
            }
    finally:
        server.stop()
    result["alone"] = await session_only(text, chunk_size, delay, tmp)
    return result


def report(name: str, values: list[float]) -> None:
    if not values:
        print(f"  {name:<34} (no samples)")
        return
    print(
        f"  {name:<34} median {ms(statistics.median(values))}   p95 {ms(pct(values, 0.95))}   "
        f"max {ms(max(values))}   (n={len(values)})"
    )


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--tokens", type=int, default=20_000)
    p.add_argument("--chunk-size", type=int, default=16, help="characters per streamed chunk")
    p.add_argument("--chunk-delay", type=float, default=0.0002, help="seconds between chunks")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        os.environ["LUBAN_HOME"] = str(tmp / "home")
        os.environ["LUBAN_CONFIG"] = str(tmp / "home" / "config.toml")
        print(f"keystroke (Enter) to first streamed token in the transcript, {args.runs} runs")
        r1 = await bench_first_token(args.runs, tmp)
        report("first message: to the transcript", r1["cold_handed"])
        report("first message: applied", r1["cold"])
        report("follow-up: to the transcript", r1["warm_handed"])
        report("follow-up: applied", r1["warm"])
        chunks = args.tokens * 4 // args.chunk_size
        print(
            f"\nstreaming a {args.tokens}-token answer ({chunks} chunks of {args.chunk_size} chars, "
            f"{args.chunk_delay * 1000:.2f} ms apart)"
        )
        r = await bench_streaming(args.tokens, args.chunk_size, args.chunk_delay, tmp)
        report(f"flush per frame ({r['frames_n']} frames)", r["frames"])
        report("keystroke to prompt", r["keys"])
        report("event-loop lag (10 ms sleep)", r["lags"])
        tokens = r["chars"] / 4
        print(
            f"  {'stream consumed':<34} {r['streamed']:8.2f} s   ({tokens / r['streamed']:,.0f} tokens/s); "
            f"all rendered after {r['rendered']:.2f} s"
        )
        print(
            f"  {'session alone (no UI)':<34} {r['alone']:8.2f} s   ({tokens / r['alone']:,.0f} tokens/s); "
            f"UI/alone = {r['streamed'] / r['alone']:.2f}x"
        )


if __name__ == "__main__":
    asyncio.run(main())
