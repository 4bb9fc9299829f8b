"""Streaming into the Transcript widget, headless (App.run_test): how long N streamed tokens take
to show, and what one frame costs while they stream.

A model streaming at `--rate` tokens/s delivers, per ~33 ms frame, rate/30 text deltas; the live
app hands each such batch to `Transcript.handle_many`. Per batch we time `handle_many` plus the
work it causes (markdown appends, mounts) and one layout + paint of the screen,
and at the end the time until every token is in the markdown widget. (Not `pilot.pause()`: it
sleeps at least 20 ms and visits every widget, which would measure the test harness.) The stream is split in
steps (a new markdown block every `--step-tokens` tokens, with a tool card and streamed tool
output between steps), so the numbers include block creation, not only appends to one block.

    python bench/tui_transcript.py [--tokens 20000] [--rate 2000] [--step-tokens 2000] [--output-lines 2000]
                                   [--gc-threshold 20000]

Textual keeps many small objects alive (a rendered line is a Strip with several caches), so
CPython's full (generation 2) collections get slow as a transcript grows; the p95 frame is
mostly those pauses. `--gc-threshold N` runs with `gc.set_threshold(N, 20, 20)` to show what
tuning the collector in the app would buy; the collector's pauses are printed either way.

Prints numbers only.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from textual.app import App, ComposeResult  # noqa: E402

from agent import events as ev  # noqa: E402
from tui.widgets.transcript import Transcript  # noqa: E402

PARAGRAPH = (
    "The failing test expects `top_words` to rank words by descending count, with ties in "
    "alphabetical order. The current key sorts ascending, so the rarest words come first; "
    "negating the count fixes the order and keeps the alphabetical tie-break intact. "
)
STEP_TAIL = (
    "\n\nPlan:\n\n- reproduce the failure\n- fix the key function\n- run the whole suite\n\n"
    "```python\nranked = sorted(items, key=lambda kv: (-kv[1], kv[0]))\n```\n\n"
)


def step_text(n_tokens: int) -> list[str]:
    """Exactly n_tokens word-tokens: paragraphs of ~60 words, then a list and a code block (the
    shape of a typical explanation)."""
    tail = [w + " " for w in STEP_TAIL.split(" ")]
    body_len = max(0, n_tokens - len(tail))
    paragraph = [w + " " for w in PARAGRAPH.split(" ")] * 2
    paragraph[-1] = paragraph[-1].rstrip() + "\n\n"
    body = (paragraph * (body_len // len(paragraph) + 1))[:body_len]
    return (body + tail)[:n_tokens] if n_tokens >= len(tail) else body[:n_tokens]


class BenchApp(App):
    def compose(self) -> ComposeResult:
        yield Transcript()


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


async def frame(app: App, t: Transcript) -> None:
    """What one frame of the live app costs after a batch: let the widgets apply it (markdown
    appends, mounts), then lay out and paint the screen now, as Textual's refresh timer would."""
    await t.wait_idle()
    for _ in range(3):
        await asyncio.sleep(0)
    app.screen._on_timer_update()


async def run(tokens: int, rate: int, step_tokens: int, output_lines: int) -> None:
    per_batch = max(1, round(rate / 30))
    pauses: list[tuple[int, float]] = []

    def on_gc(phase: str, info: dict) -> None:
        if phase == "start":
            on_gc.t0 = time.perf_counter()  # type: ignore[attr-defined]
        else:
            pauses.append((info["generation"], time.perf_counter() - on_gc.t0))  # type: ignore[attr-defined]

    gc.callbacks.append(on_gc)
    app = BenchApp()
    frames: list[float] = []
    handle_times: list[float] = []
    out_frames: list[float] = []
    async with app.run_test(size=(120, 40)) as pilot:
        t = app.query_one(Transcript)
        t.handle(ev.RunStarted(run_id="bench", task="bench", repo="/bench", commit=None, model="bench"))
        await pilot.pause()
        started = time.perf_counter()
        sent, step = 0, 0
        while sent < tokens:
            step += 1
            t.handle(ev.StepStarted(step=step))
            in_step = 0
            words = step_text(min(step_tokens, tokens - sent))
            while in_step < step_tokens and sent < tokens:
                n = min(per_batch, step_tokens - in_step, tokens - sent)
                batch = [ev.TextDelta(step=step, text=words[in_step + k]) for k in range(n)]
                f0 = time.perf_counter()
                t.handle_many(batch)
                h = time.perf_counter()
                await frame(app, t)
                frames.append(time.perf_counter() - f0)
                handle_times.append(h - f0)
                sent += n
                in_step += n
            block = t.step_block(step)
            t.handle(ev.AssistantMessage(step=step, content=block.text if block else ""))
            call_id = f"call_{step}"
            args = json.dumps({"command": "pytest -q"})
            t.handle(ev.ToolCallStarted(step=step, call_id=call_id, name="execute_bash", arguments=args))
            lines_per_batch = 40
            for first in range(0, output_lines // max(1, tokens // step_tokens), lines_per_batch):
                batch = [
                    ev.ToolOutputDelta(call_id=call_id, text=f"tests/test_{first + k}.py::test_case PASSED\n")
                    for k in range(lines_per_batch)
                ]
                f0 = time.perf_counter()
                t.handle_many(batch)
                await frame(app, t)
                out_frames.append(time.perf_counter() - f0)
            t.handle(
                ev.ToolCallFinished(
                    step=step,
                    call_id=call_id,
                    name="execute_bash",
                    output="ok\n[exit code: 0]",
                    duration=1.0,
                    data={"exit_code": 0},
                )
            )
        await t.wait_idle()
        await pilot.pause()
        total = time.perf_counter() - started
        blocks = len(t.blocks)
        widgets = len(list(app.screen.walk_children()))
    gc.callbacks.remove(on_gc)
    full = [p for g, p in pauses if g == 2]
    ms = 1000
    print(f"tokens                      {tokens}")
    print(f"rate (simulated)            {rate} tok/s, {per_batch} deltas per ~33 ms batch")
    print(f"steps                       {step}  (blocks {blocks}, widgets on screen {widgets})")
    print(f"text batches                {len(frames)}")
    print(
        f"total time to show all      {total:.3f} s  ({tokens / total:,.0f} tok/s, real time would be {tokens / rate:.1f} s)"
    )
    print(
        f"handle_many per batch       median {statistics.median(handle_times) * ms:.2f} ms  p95 {percentile(handle_times, 0.95) * ms:.2f} ms"
    )
    print(
        f"frame (handle + refresh)    median {statistics.median(frames) * ms:.2f} ms  p95 {percentile(frames, 0.95) * ms:.2f} ms  max {max(frames) * ms:.2f} ms"
    )
    print(f"gc thresholds               {gc.get_threshold()}")
    print(
        f"gc full collections         {len(full)}, max {max(full, default=0) * ms:.1f} ms, "
        f"total {sum(full) * ms:.0f} ms; young {sum(p for g, p in pauses if g < 2) * ms:.0f} ms"
    )
    if out_frames:
        print(
            f"tool output frame (40 lines) median {statistics.median(out_frames) * ms:.2f} ms  p95 {percentile(out_frames, 0.95) * ms:.2f} ms"
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tokens", type=int, default=20_000)
    p.add_argument("--rate", type=int, default=2_000, help="simulated tokens per second")
    p.add_argument("--step-tokens", type=int, default=2_000, help="tokens per model turn")
    p.add_argument("--output-lines", type=int, default=2_000, help="tool output lines over the whole run")
    p.add_argument("--gc-threshold", type=int, help="gc.set_threshold(N, 20, 20) before the run")
    args = p.parse_args()
    if args.gc_threshold:
        gc.set_threshold(args.gc_threshold, 20, 20)
    asyncio.run(run(args.tokens, args.rate, args.step_tokens, args.output_lines))


if __name__ == "__main__":
    main()
