"""The Transcript widget, mounted in a small app and fed real event objects: what it shows, how it
streams, and that it stays cheap (coalescing, caps, follow)."""

from __future__ import annotations

import json
import time

import pytest
from rich.syntax import Syntax
from textual.app import App, ComposeResult
from textual.widgets import Markdown

from agent import events as ev
from tests.tui import screen_text
from tui.widgets.tool_card import MAX_LINES, OutputTail, ToolCard, tool_summary
from tui.widgets.transcript import AssistantBlock, NoteLine, RunHeader, Transcript, UserBlock, coalesce

DIFF = (
    "--- a/calc/ops.py\n+++ b/calc/ops.py\n@@ -1,3 +1,3 @@\n def add(a, b):\n"
    '     """Return the sum of a and b."""\n-    return a - b\n+    return a + b\n'
)


class TranscriptApp(App):
    def __init__(self, **kwargs):
        super().__init__()
        self.kwargs = kwargs

    def compose(self) -> ComposeResult:
        yield Transcript(**self.kwargs)


async def settle(app, pilot) -> Transcript:
    t = app.query_one(Transcript)
    await t.wait_idle()
    await pilot.pause()
    await t.wait_idle()
    await pilot.pause()
    return t


def bash(step: int, call_id: str, command: str) -> ev.ToolCallStarted:
    return ev.ToolCallStarted(
        step=step, call_id=call_id, name="execute_bash", arguments=json.dumps({"command": command})
    )


async def test_streamed_text_is_replaced_by_the_final_message():
    app = TranscriptApp()
    async with app.run_test(size=(100, 30)) as pilot:
        t = app.query_one(Transcript)
        t.handle(ev.StepStarted(step=1))
        for word in ["Let ", "me ", "look ", "at ", "**the ", "tests**."]:
            t.handle(ev.TextDelta(step=1, text=word))
        t.handle_many([ev.TextDelta(step=1, text=" <tool_call>junk</tool_call>")])
        await settle(app, pilot)
        block = t.step_block(1)
        assert block.markdown.source == "Let me look at **the tests**. <tool_call>junk</tool_call>"
        assert "Let me look at the tests." in screen_text(app)  # rendered: bold markers gone

        # recovery stripped the tool-call markup: the message's content is authoritative
        t.handle(ev.AssistantMessage(step=1, content="Let me look at **the tests**."))
        await settle(app, pilot)
        assert block.markdown.source == "Let me look at **the tests**."
        screen = screen_text(app)
        assert "Let me look at the tests." in screen and "junk" not in screen
        assert len(app.query(AssistantBlock)) == 1


async def test_a_message_without_deltas_is_rendered_directly():
    app = TranscriptApp()
    async with app.run_test(size=(100, 30)) as pilot:
        t = app.query_one(Transcript)
        t.handle_many(
            [
                ev.StepStarted(step=3),
                ev.AssistantMessage(step=3, content="# Plan\n\n1. reproduce\n2. fix the `add` function"),
            ]
        )
        await settle(app, pilot)
        screen = screen_text(app)
        assert "Plan" in screen and "reproduce" in screen and "fix the add function" in screen
        # a turn with only tool calls adds no text block
        t.handle(
            ev.AssistantMessage(
                step=4, content="", tool_calls=[ev.ToolCallInfo(id="a", name="x", arguments="{}")]
            )
        )
        await settle(app, pilot)
        assert len(app.query(AssistantBlock)) == 1


async def test_reasoning_is_dimmed_in_a_collapsible_folded_when_text_starts():
    app = TranscriptApp()
    async with app.run_test(size=(100, 30)) as pilot:
        t = app.query_one(Transcript)
        t.handle_many(
            [ev.ReasoningDelta(step=1, text="The sort "), ev.ReasoningDelta(step=1, text="is reversed.")]
        )
        await settle(app, pilot)
        view = t.step_block(1).reasoning
        assert view.title == "reasoning" and not view.collapsed
        assert "The sort is reversed." in screen_text(app)
        style = view.text_widget.rich_style
        assert style.dim and style.italic

        t.handle(ev.TextDelta(step=1, text="Fixing it."))
        await settle(app, pilot)
        assert view.collapsed
        screen = screen_text(app)
        assert "▶ reasoning" in screen and "The sort is reversed." not in screen and "Fixing it." in screen

        # no deltas (replay): the message's reasoning is shown, folded since the turn has text
        t.handle(ev.AssistantMessage(step=2, content="Done.", reasoning="Checked twice."))
        await settle(app, pilot)
        assert t.step_block(2).reasoning.text == "Checked twice." and t.step_block(2).reasoning.collapsed


async def test_tool_card_streams_live_then_collapses_with_exit_code_and_error_style():
    app = TranscriptApp()
    async with app.run_test(size=(100, 30)) as pilot:
        t = app.query_one(Transcript)
        t.handle(bash(1, "c1", "pytest -x"))
        t.handle_many([ev.ToolOutputDelta(call_id="c1", text=f"line {i}\n") for i in range(5)])
        await settle(app, pilot)
        card = t.card("c1")
        assert not card.collapsed and card.running
        assert card.title_text.startswith("⋯ execute_bash  pytest -x") and "running" in card.title_text
        screen = screen_text(app)
        assert "line 0" in screen and "line 4" in screen

        t.handle(
            ev.ToolCallFinished(
                step=1,
                call_id="c1",
                name="execute_bash",
                output="1 failed\n[exit code: 1]",
                is_error=True,
                duration=2.5,
                data={"exit_code": 1},
            )
        )
        t.handle(bash(1, "c2", "ls"))
        t.handle(
            ev.ToolCallFinished(
                step=1,
                call_id="c2",
                name="execute_bash",
                output="a\n[exit code: 0]",
                duration=0.02,
                data={"exit_code": 0},
            )
        )
        await settle(app, pilot)
        assert card.collapsed and not card.running
        assert card.title_text == "✗ execute_bash  pytest -x  exit 1 · 2.5s"
        assert card.has_class("-error") and not t.card("c2").has_class("-error")
        # red: the error card's title and border differ from a good card's
        ok = t.card("c2")
        assert card._title.rich_style.color != ok._title.rich_style.color
        assert card.styles.border_left[1] != ok.styles.border_left[1]
        screen = screen_text(app)
        assert "✗ execute_bash  pytest -x  exit 1 · 2.5s" in screen
        assert "line 4" not in screen and "1 failed" not in screen  # folded
        # the final output replaced the live output; expanding shows it
        card.collapsed = False
        await settle(app, pilot)
        assert "1 failed" in screen_text(app) and "line 4" not in screen_text(app)


async def test_edit_shows_its_diff_and_todo_write_its_checklist():
    app = TranscriptApp()
    async with app.run_test(size=(100, 40)) as pilot:
        t = app.query_one(Transcript)
        args = {"command": "str_replace", "path": "calc/ops.py", "old_str": "a - b", "new_str": "a + b"}
        t.handle(
            ev.ToolCallStarted(step=2, call_id="e", name="str_replace_editor", arguments=json.dumps(args))
        )
        t.handle(
            ev.ToolCallFinished(
                step=2,
                call_id="e",
                name="str_replace_editor",
                output="edited",
                duration=0.01,
                data={"path": "calc/ops.py", "diff": DIFF},
            )
        )
        todos = [{"content": "reproduce", "status": "done"}, {"content": "fix add", "status": "in_progress"}]
        t.handle(
            ev.ToolCallStarted(step=3, call_id="t", name="todo_write", arguments=json.dumps({"todos": todos}))
        )
        t.handle(
            ev.ToolCallFinished(
                step=3, call_id="t", name="todo_write", output="Plan updated", data={"todos": todos}
            )
        )
        await settle(app, pilot)
        edit = t.card("e")
        assert edit.title_text.startswith("✔ str_replace_editor  str_replace calc/ops.py")
        assert not edit.collapsed and isinstance(edit.body.content, Syntax)
        assert edit.body.content.lexer.name == "Diff"
        screen = screen_text(app)
        assert "-    return a - b" in screen and "+    return a + b" in screen
        assert "✔ reproduce" in screen and "▸ fix add" in screen and "1/2 done" in screen


async def test_five_thousand_deltas_in_one_batch_are_one_widget_update():
    app = TranscriptApp()
    async with app.run_test(size=(100, 30)) as pilot:
        t = app.query_one(Transcript)
        t.handle(ev.StepStarted(step=1))
        await settle(app, pilot)
        applied = t.applied
        deltas = [ev.TextDelta(step=1, text=f"w{i} ") for i in range(5000)]
        started = time.perf_counter()
        t.handle_many(deltas)
        await settle(app, pilot)
        took = time.perf_counter() - started
        block = t.step_block(1)
        assert t.applied - applied == 1  # one coalesced event
        assert block.markdown.updates == 1  # one append to the widget
        assert block.markdown.source.endswith("w4999 ") and block.markdown.source.startswith("w0 w1 ")
        assert took < 2.0, took


async def test_old_turns_are_frozen_into_one_widget_each():
    app = TranscriptApp(live_markdown=2)
    async with app.run_test(size=(100, 60)) as pilot:
        t = app.query_one(Transcript)
        for step in range(1, 5):
            t.handle(ev.StepStarted(step=step))
            t.handle_many(
                [
                    ev.TextDelta(
                        step=step, text=f"Turn {step}:\n\n- one\n- two\n\n```python\nx = {step}\n```\n"
                    )
                ]
            )
            await settle(app, pilot)
            t.handle(ev.AssistantMessage(step=step, content=t.step_block(step).text, tool_calls=[]))
            t.handle(bash(step, f"c{step}", f"echo {step}"))
            t.handle(ev.ToolOutputDelta(call_id=f"c{step}", text=f"{step}\n"))
            t.handle(
                ev.ToolCallFinished(
                    step=step,
                    call_id=f"c{step}",
                    name="execute_bash",
                    output=f"{step}\n[exit code: 0]",
                    data={"exit_code": 0},
                )
            )
            await settle(app, pilot)
        blocks = [t.step_block(n) for n in range(1, 5)]
        assert [b.frozen for b in blocks] == [True, True, False, False]
        assert len(app.query(Markdown)) == 2
        # a frozen turn is one Static in its block; a finished card keeps only what it shows
        assert [type(w).__name__ for w in blocks[0].children] == ["Static"]
        assert len(list(t.card("c1").query("*"))) == 3  # title, contents, body
        screen = screen_text(app)
        for n in range(1, 5):
            assert f"Turn {n}:" in screen and f"x = {n}" in screen
        assert screen.count("• one") == 4


def test_coalesce_joins_only_consecutive_deltas_of_one_stream():
    events = [
        ev.TextDelta(step=1, text="a"),
        ev.TextDelta(step=1, text="b"),
        ev.TextDelta(step=2, text="c"),
        ev.ReasoningDelta(step=2, text="r"),
        ev.ReasoningDelta(step=2, text="s"),
        ev.ToolOutputDelta(call_id="x", text="1"),
        ev.ToolOutputDelta(call_id="y", text="2"),
        ev.ToolOutputDelta(call_id="y", text="3"),
        ev.Notice(message="n"),
        ev.TextDelta(step=2, text="d"),
    ]
    out = coalesce(events)
    assert [(e.type, getattr(e, "text", None)) for e in out] == [
        ("text_delta", "ab"),
        ("text_delta", "c"),
        ("reasoning_delta", "rs"),
        ("tool_output_delta", "1"),
        ("tool_output_delta", "23"),
        ("notice", None),
        ("text_delta", "d"),
    ]
    assert events[0].text == "a"  # the inputs are not modified


async def test_block_cap_evicts_the_oldest_with_a_marker():
    app = TranscriptApp(max_blocks=5)
    async with app.run_test(size=(100, 30)) as pilot:
        t = app.query_one(Transcript)
        t.handle(bash(1, "old", "echo old"))
        for i in range(11):
            t.add_note(f"note {i}")
        await settle(app, pilot)
        assert len(t.blocks) == 5 and t.hidden_blocks == 7
        assert len(app.query(NoteLine)) == 5 and not app.query(ToolCard)
        assert t.card("old") is None  # forgotten with its widget
        screen = screen_text(app)
        assert "… 7 earlier blocks hidden" in screen
        assert "note 6" in screen and "note 10" in screen and "note 5" not in screen
        # output for an evicted call is ignored, not an error
        t.handle(ev.ToolOutputDelta(call_id="old", text="late"))
        t.clear_transcript()
        await settle(app, pilot)
        assert t.blocks == [] and not app.query(NoteLine) and "hidden" not in screen_text(app)


def test_output_tail_caps_lines_and_chars():
    tail = OutputTail.of("".join(f"line {i}\n" for i in range(3000)) + "partial")
    assert len(tail.lines) <= MAX_LINES and tail.hidden == 3000 - len(tail.lines)
    assert tail.lines[-1] == "line 2999" and tail.text().endswith("line 2999\npartial")
    small = OutputTail(max_lines=10_000, max_chars=1_000)
    for i in range(500):
        small.write(f"{i:04d} {'x' * 20}\n")
    assert small.chars <= 1_000 and small.hidden > 0 and small.lines[-1].startswith("0499")
    # colours are stripped; a progress bar redrawn with \r keeps what was drawn last
    assert OutputTail.of("\x1b[31mred\x1b[0m ok\r\n10%\r50%\r100%\n").text() == "red ok\n100%"


async def test_live_output_is_capped_with_a_hidden_lines_marker():
    app = TranscriptApp(max_output_chars=2_000)
    async with app.run_test(size=(100, 30)) as pilot:
        t = app.query_one(Transcript)
        t.handle(bash(1, "c", "yes"))
        for batch in range(10):
            t.handle_many([ev.ToolOutputDelta(call_id="c", text=f"out {batch}-{i}\n") for i in range(100)])
        await settle(app, pilot)
        card = t.card("c")
        assert card.tail.chars <= 2_000 and card.tail.hidden > 0
        kept = len(card.tail.lines)
        assert card.tail.hidden + kept == 1000
        assert card.live.line_count == kept and card.live.lines[-2] == "out 9-99"
        screen = screen_text(app)
        assert f"… {card.tail.hidden} earlier lines hidden" in screen and "out 9-99" in screen


async def test_follow_sticks_to_the_end_until_the_user_scrolls_up():
    app = TranscriptApp()
    async with app.run_test(size=(60, 10)) as pilot:
        t = app.query_one(Transcript)
        for i in range(30):
            t.add_note(f"note {i}")
        await settle(app, pilot)
        assert t.follow and t.max_scroll_y > 0 and t.scroll_y == t.max_scroll_y
        assert "note 29" in screen_text(app)

        t.scroll_home(animate=False)
        await settle(app, pilot)
        assert not t.follow
        for i in range(30, 40):
            t.add_note(f"note {i}")
        await settle(app, pilot)
        assert t.scroll_y == 0 and "note 0" in screen_text(app)

        t.scroll_end(animate=False)  # back at the bottom: following again
        await settle(app, pilot)
        assert t.follow
        t.handle(ev.StepStarted(step=1))
        t.handle_many([ev.TextDelta(step=1, text=f"para {i}\n\n") for i in range(20)])
        await settle(app, pilot)
        assert t.scroll_y == t.max_scroll_y and "para 19" in screen_text(app)

    # the viewer's transcript never scrolls by itself, even after the user visited the end
    app = TranscriptApp(follow=False)
    async with app.run_test(size=(60, 10)) as pilot:
        t = app.query_one(Transcript)
        for i in range(30):
            t.add_note(f"note {i}")
        await settle(app, pilot)
        assert not t.follow and t.scroll_y == 0
        t.scroll_end(animate=False)
        await settle(app, pilot)
        t.clear_transcript()
        t.scroll_home(animate=False)
        for i in range(30):
            t.add_note(f"again {i}")
        await settle(app, pilot)
        assert not t.follow and t.scroll_y == 0 and "again 0" in screen_text(app)

    # short content does not float at the bottom of the view
    app = TranscriptApp()
    async with app.run_test(size=(60, 10)) as pilot:
        t = app.query_one(Transcript)
        t.add_note("only line")
        await settle(app, pilot)
        assert t.scroll_y == 0 and screen_text(app).splitlines()[0].strip() == "only line"


async def test_user_messages_run_header_notes_approvals_and_footer():
    app = TranscriptApp()
    async with app.run_test(size=(100, 40)) as pilot:
        t = app.query_one(Transcript)
        t.add_user_message("fix the bug")
        t.handle(
            ev.RunStarted(
                run_id="r1", task="fix the bug", repo="/work/calc", commit="0123456789abcdef", model="kimi-k2"
            )
        )
        t.handle(ev.Notice(level="warning", message="retrying in 2s"))
        t.handle(bash(1, "c", "rm -rf build"))
        t.handle(
            ev.ApprovalRequested(
                call_id="c",
                tool="execute_bash",
                kind="command",
                summary="run: rm -rf build",
                key="execute_bash:rm",
            )
        )
        await settle(app, pilot)
        assert "? waiting for approval (command): run: rm -rf build" in screen_text(app)
        t.handle(
            ev.ApprovalAnswered(
                call_id="c", tool="execute_bash", decision="deny", by="user", message="not that"
            )
        )
        t.handle(
            ev.ToolCallFinished(step=1, call_id="c", name="execute_bash", output="refused", is_error=True)
        )
        t.handle(ev.ErrorEvent(kind="ModelError", message="server said 500"))
        t.add_user_message("try again")
        t.handle(ev.UserMessage(text="try again"))  # the session's echo: not shown twice
        t.handle(ev.UserMessage(text="from elsewhere"))
        t.handle(
            ev.RunFinished(
                reason="finished",
                message="Fixed add().",
                exit_code=0,
                steps=4,
                diff=DIFF,
                prompt_tokens=12_345,
                completion_tokens=678,
                cost=0.0123,
                duration=12.5,
            )
        )
        await settle(app, pilot)
        kinds = [type(b).__name__ for b in t.blocks]
        assert kinds == [
            "RunHeader",
            "UserBlock",
            "NoteLine",
            "ToolCard",
            "NoteLine",
            "UserBlock",
            "UserBlock",
            "RunFooter",
            "DiffBlock",
        ]
        header = app.query_one(RunHeader)
        assert "kimi-k2" in str(header.content) and "Task:" not in str(header.content)
        assert [str(u.content) for u in app.query(UserBlock)] == [
            "fix the bug",
            "try again",
            "from elsewhere",
        ]
        t.card("c").collapsed = False
        await settle(app, pilot)
        screen = screen_text(app)
        assert "Luban · kimi-k2 · /work/calc @ 0123456789" in screen
        assert "! retrying in 2s" in screen and "✗ ModelError: server said 500" in screen
        assert "⊘ refused by you: not that" in screen
        assert "✔ finished: Fixed add()." in screen
        assert "4 steps · 12k in / 678 out tokens · $0.0123 · 12.5s" in screen
        assert "+    return a + b" in screen  # the run's diff, short: open


async def test_events_before_mount_are_applied_on_mount_and_long_diffs_fold():
    t = Transcript()
    t.handle(ev.UserMessage(text="early"))

    class Late(App):
        def compose(self) -> ComposeResult:
            yield t

    app = Late()
    async with app.run_test(size=(80, 20)) as pilot:
        long = "--- a/x\n+++ b/x\n@@ -1,60 +1,60 @@\n" + "".join(f"-old {i}\n+new {i}\n" for i in range(60))
        t.add_diff(long, "diff")
        await settle(app, pilot)
        screen = screen_text(app)
        assert "early" in screen and "▶ diff  1 file  +60 −60" in screen and "new 3" not in screen


@pytest.mark.parametrize(
    ("name", "args", "expected"),
    [
        ("execute_bash", {"command": "pytest -x\necho done"}, "pytest -x …"),
        ("str_replace_editor", {"command": "view", "path": "a.py", "view_range": [1, 20]}, "view a.py 1:20"),
        ("search", {"pattern": "def top_words", "context_lines": 3}, "def top_words  context_lines=3"),
        ("run_tests", {}, ""),
        ("finish", {"message": "All done."}, "All done."),
    ],
)
def test_tool_summaries(name, args, expected):
    assert tool_summary(name, json.dumps(args)) == expected


def test_markdown_is_textual_markdown():
    # the live app may query it: the streamed text is a real Markdown widget
    from tui.widgets.transcript import StreamingMarkdown

    assert issubclass(StreamingMarkdown, Markdown)


def test_safe_cut_never_splits_a_code_fence():
    from tui.widgets.transcript import safe_cut

    text = "para one\n\n```python\nx = 1\n\ny = 2\n```\n\nlast para"
    cut = safe_cut(text)
    assert text[:cut].endswith("```\n\n") and text[cut:] == "last para"
    assert safe_cut("```\na\n\nb\n") == 0  # inside an unclosed fence: nowhere safe
    assert safe_cut("no breaks at all") == 0


async def test_a_long_reply_is_split_into_frozen_segments_and_a_small_live_tail():
    from textual.app import App

    from agent import events as ev
    from tui.widgets.transcript import SEGMENT_CHARS, Transcript

    class Host(App):
        def compose(self):
            yield Transcript()

    paragraphs = [f"Paragraph {i}: " + "word " * 60 + "\n\n" for i in range(40)]
    async with Host().run_test(size=(100, 30)) as pilot:
        t = pilot.app.query_one(Transcript)
        for p in paragraphs:
            t.handle_many([ev.TextDelta(step=1, text=p)])
            await t.wait_idle()
            await pilot.pause()
        block = t.step_block(1)
        assert block.text == "".join(paragraphs)
        assert len(block.markdown.text) <= SEGMENT_CHARS + len(paragraphs[0])
        assert len(block._segments) >= 5
        t.handle(ev.AssistantMessage(step=1, content="".join(paragraphs)))
        await t.wait_idle()
        assert block.text == "".join(paragraphs)
        # Recovery may rewrite a streamed reply (tool-call markup stripped): segments give way.
        for p in paragraphs[:20]:
            t.handle_many([ev.TextDelta(step=2, text=p)])
            await t.wait_idle()
            await pilot.pause()
        second = t.step_block(2)
        assert second._segments
        t.handle(ev.AssistantMessage(step=2, content="rewritten entirely"))
        await t.wait_idle()
        assert second.text == "rewritten entirely" and not second._segments
