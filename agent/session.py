"""One task on one workspace: builds the model, tools and graph, runs it, emits events, records
the trajectory and computes the run's diff. Every front end (TUI, `luban exec`, `luban bench`)
runs this same Session and differs only in how it renders events."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from agent import events as ev
from agent.config import ConfigError, Settings, state_dir
from agent.context import Budget
from agent.llm.errors import ModelError
from agent.llm.profile import DEFAULT_CONTEXT_WINDOW
from agent.llm.types import Model
from agent.loop import AgentLoop, Limits, Pricing
from agent.trajectory import TrajectoryWriter, new_run_id
from tools.base import Tool, ToolContext
from tools.environment import Environment, LocalEnvironment
from tools.git.checkpoints import CheckpointError, CheckpointStore, RestoreReport
from tools.registry import ToolRegistry

EXIT_OK, EXIT_GAVE_UP, EXIT_USAGE, EXIT_MODEL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
EXIT_CODES = {
    "finished": EXIT_OK,
    "answered": EXIT_OK,
    "max_steps": EXIT_GAVE_UP,
    "max_cost": EXIT_GAVE_UP,
    "time_limit": EXIT_GAVE_UP,
    "error": EXIT_GAVE_UP,
    "model_error": EXIT_MODEL,
    "context_overflow": EXIT_GAVE_UP,
    "stuck": EXIT_GAVE_UP,
    "interrupted": EXIT_INTERRUPTED,
}

Subscriber = Callable[[ev.Event], None]
AskFn = Callable[[Any], Awaitable[Any]]  # ApprovalRequest -> Answer (agent.approval)


def prompt_text(name: str) -> str:
    return resources.files("agent.prompts").joinpath(name).read_text(encoding="utf-8")


def build_model(settings: Settings, on_retry: Callable[[Exception, int, float], None] | None = None) -> Model:
    """The model a run talks to: `replay:PATH` replays a trajectory, anything else is an
    OpenAI-compatible endpoint described by its profile (presets + settings)."""
    if settings.model and settings.model.startswith("replay:"):
        from agent.llm.replay import ReplayModel

        path = Path(settings.model.removeprefix("replay:")).expanduser()
        if not path.is_file():
            raise ConfigError(f"--model replay:{path}: no such trajectory file")
        return ReplayModel(path)
    from agent.llm.client import ClientConfig, OpenAIModel
    from agent.llm.profile import resolve_profile

    profile = resolve_profile(settings)
    config = ClientConfig.from_profile(
        profile,
        max_tokens=settings.max_tokens,
        request_timeout=settings.request_timeout,
        max_retries=settings.max_retries,
        retry_base_delay=settings.retry_base_delay,
        stream=settings.stream,
    )
    model = OpenAIModel(config, on_retry=on_retry)
    model.profile = profile
    return model


@dataclass
class RunOutcome:
    finished: ev.RunFinished
    trajectory: Path
    loop: AgentLoop


class Session:
    def __init__(
        self,
        settings: Settings,
        repo: Path,
        task: str,
        *,
        model: Model | None = None,
        registry: ToolRegistry | None = None,
        env: Environment | None = None,
        subscribers: Iterable[Subscriber] = (),
        trajectory_path: Path | None = None,
        run_id: str | None = None,
        ask: AskFn | None = None,
        branch: str | None = None,
    ):
        """`ask` answers approval requests the policy leaves to the user (None: a non-interactive
        run, which denies them). `branch`: work on a new branch and commit the result there
        ("" names it luban/<slug of the task>)."""
        self.settings = settings
        self.repo = Path(repo).resolve()
        self.task = task
        self.run_id = run_id or new_run_id()
        self.subscribers = list(subscribers)
        self.model = model or build_model(settings, on_retry=self._on_retry)
        self.registry = registry or ToolRegistry.default(settings.tools_enabled, settings.tools_disabled)
        self.env = env or LocalEnvironment(self.repo)
        if trajectory_path is None:
            base = (
                Path(settings.trajectory_dir).expanduser()
                if settings.trajectory_dir
                else state_dir() / "runs"
            )
            trajectory_path = base / f"{self.run_id}.jsonl"
        self.trajectory_path = Path(trajectory_path)
        self._writer: TrajectoryWriter | None = None
        self._ctx: ToolContext | None = None
        self.ask = ask
        self.branch_request = branch
        self.branch: str | None = None  # the branch the run works on, once created
        self.commit: str | None = None  # the commit of the result on that branch
        from agent.approval import ApprovalPolicy

        self.policy = ApprovalPolicy(settings.approval, settings.allow_commands, settings.deny_commands)
        self.store: CheckpointStore | None = None
        self.base_tree: str | None = None
        self.end_tree: str | None = None
        self.checkpoint_count = 0
        self.loop: AgentLoop | None = None
        self.last_finished: ev.RunFinished | None = None
        self._graph: Any = None
        self._graph_task: asyncio.Future | None = None
        self._interrupting = False
        self._closed = False
        self._notes: list[str] = []  # told to the model with the next user message
        self._undo_cursor: int | None = None
        self._resumed: list[dict[str, Any]] | None = None

    def subscribe(self, fn: Subscriber) -> None:
        self.subscribers.append(fn)

    def emit(self, event: ev.Event) -> None:
        if self._writer is not None:
            self._writer.event(event)
        for fn in self.subscribers:
            fn(event)

    def _on_retry(self, exc: Exception, attempt: int, delay: float) -> None:
        self.emit(
            ev.Notice(level="warning", message=f"model call failed ({exc}); retry {attempt} in {delay:.1f}s")
        )

    async def before_change(self, tool: Tool, params: Any) -> str | None:
        """Runs before every call that may change something: the approval policy first, then a
        checkpoint. A returned string refuses the call (the model reads it)."""
        refusal = await self._approve(tool, params)
        if refusal or self.store is None or not self.settings.checkpoints:
            return refusal
        label = tool.describe_call(params)
        t0 = time.perf_counter()
        try:
            cp, new = await asyncio.to_thread(self.store.create, self.run_id, label)
        except (CheckpointError, OSError) as exc:
            self.emit(ev.Notice(level="warning", message=f"checkpoint failed, change refused: {exc}"))
            return (
                f"This change was not made: Luban could not record a checkpoint first ({exc}), so it could "
                "not be undone. Tell the user; they can run with --no-checkpoints to allow it."
            )
        if new:
            self.checkpoint_count += 1
            self.emit(
                ev.CheckpointCreated(n=cp.n, ref=cp.ref, label=label, duration=time.perf_counter() - t0)
            )
        return None

    async def _approve(self, tool: Tool, params: Any) -> str | None:
        from agent.approval import ApprovalRequest, non_interactive_answer, refusal_message

        request = ApprovalRequest.for_call(tool, params)
        decision = self.policy.decide(request)
        call_id = self._ctx.call_id if self._ctx else ""
        if decision.verdict == "allow":
            return None
        if decision.verdict == "deny":
            self.emit(
                ev.ApprovalAnswered(
                    call_id=call_id, tool=tool.name, decision="deny", by="policy", message=decision.reason
                )
            )
            return refusal_message(request, decision)
        self.emit(
            ev.ApprovalRequested(
                call_id=call_id, tool=tool.name, kind=request.kind, summary=request.summary, key=request.key
            )
        )
        if self.ask is None:
            answer, by = non_interactive_answer(request, self.policy, decision), "policy"
        else:
            answer, by = await self.ask(request), "user"
        allowed = answer.decision in ("once", "always")
        if answer.decision == "always":
            self.policy.remember(request)
        self.emit(
            ev.ApprovalAnswered(
                call_id=call_id,
                tool=tool.name,
                decision="allow" if allowed else "deny",
                by=by,
                always=answer.decision == "always",
                message=answer.message or "",
            )
        )
        return None if allowed else refusal_message(request, answer)

    async def _start_workspace(self, info: Any) -> None:
        """Open the checkpoint store, start the run branch, record checkpoint 0 (the base of
        the run's diff). Failures cost the feature, never the run, except an explicit --branch."""
        s = self.settings
        if info is None and not s.checkpoints:
            return
        try:
            self.store = CheckpointStore(self.repo, workspace_cache_dir(self.repo))
        except Exception as exc:
            self.emit(ev.Notice(level="warning", message=f"no checkpoints or diff: {exc}"))
            return
        if self.branch_request is not None:
            from tools.git.run_branch import start_branch

            try:
                self.branch = await asyncio.to_thread(
                    start_branch, self.store, self.task, self.branch_request or None
                )
            except CheckpointError as exc:
                raise ConfigError(str(exc)) from None
            self.emit(ev.Notice(level="info", message=f"working on a new branch: {self.branch}"))
        try:
            earlier = (
                await asyncio.to_thread(self.store.list, self.run_id) if self._resumed is not None else []
            )
            if earlier:  # a resumed conversation: its diff still starts where the run started
                self.base_tree = earlier[0].tree
                self.checkpoint_count = len(earlier)
            elif s.checkpoints:
                cp, _ = await asyncio.to_thread(self.store.create, self.run_id, "run start")
                self.checkpoint_count = 1
                self.base_tree = cp.tree
            else:
                self.base_tree = (await asyncio.to_thread(self.store.snapshot)).tree
        except (CheckpointError, OSError) as exc:
            self.emit(ev.Notice(level="warning", message=f"no checkpoints or diff: {exc}"))
            self.store = None

    async def _finish_workspace(self, finished_message: str) -> str:
        """The run's diff (tree at start vs now) and, with --branch, the commit of the result."""
        if self.store is None or self.base_tree is None:
            return ""
        try:
            snap = await asyncio.shield(asyncio.to_thread(self.store.snapshot))
            self.end_tree = snap.tree
            diff = await asyncio.shield(asyncio.to_thread(self.store.diff, self.base_tree, snap.tree))
        except Exception as exc:  # the diff is a report; never lose the run over it
            self.emit(ev.Notice(level="warning", message=f"could not compute the diff: {exc}"))
            return ""
        if self.branch:
            from tools.git.run_branch import commit_message, commit_run

            message = commit_message(self.task, finished_message, self.run_id, self.model.name)
            try:
                self.commit = await asyncio.shield(
                    asyncio.to_thread(commit_run, self.store, self.branch, self.base_tree, snap.tree, message)
                )
            except Exception as exc:
                self.emit(
                    ev.Notice(level="warning", message=f"could not commit the result on {self.branch}: {exc}")
                )
            else:
                what = f"committed {self.commit[:12]}" if self.commit else "nothing new to commit"
                self.emit(ev.Notice(level="info", message=f"{what} on {self.branch}"))
        return diff

    def patch(self) -> str:
        """The run's changes as a patch `git apply` accepts, binary files included."""
        if self.store is None or not self.base_tree or not self.end_tree:
            return ""
        return self.store.diff(self.base_tree, self.end_tree, binary=True)

    async def _repo_map(self, budget: int, ctx: ToolContext) -> str:
        """A small ranked outline of the repository for the first prompt, focused on what the task
        mentions, so the model starts oriented. A failure only costs the map, never the run. The
        RepoMap is the one the code tools share, so its cache is loaded once per session."""
        from tools.code.repo_map import shared_repomap

        files, idents = task_mentions(self.repo, self.task)
        try:
            repomap = shared_repomap(ctx)
            text = await asyncio.to_thread(
                repomap.build, focus_files=files, focus_idents=idents, budget_tokens=budget
            )
        except Exception as exc:
            self.emit(ev.Notice(level="warning", message=f"no repo map: {type(exc).__name__}: {exc}"))
            return ""
        return (
            f"\nRepository map (most relevant definitions first):\n{text.rstrip()}\n" if text.strip() else ""
        )

    def initial_messages(self, repo_summary: str) -> list[dict[str, Any]]:
        system = prompt_text("system.md").format(root=self.repo)
        user = prompt_text("task.md").format(task=self.task.strip(), repo_summary=repo_summary)
        return [{"role": "system", "content": system}, {"role": "user", "content": user}]

    async def run(self) -> RunOutcome:
        """Headless: the task, to the end. Ctrl-C (a cancellation) is recorded, then re-raised."""
        try:
            finished = await self.send(self.task)
        finally:
            await self.close()
        return RunOutcome(finished=finished, trajectory=self.trajectory_path, loop=self.loop)

    async def send(self, text: str) -> ev.RunFinished:
        """One turn of the conversation: the first message is the task, later ones follow up on
        it (a correction after an interruption, a new request). Runs until the model finishes,
        answers, hits a limit or is interrupted, and returns that turn's RunFinished."""
        if self.loop is None:
            self.task = self.task or text
            messages = await self._open(text)
        else:
            self.emit(ev.UserMessage(text=text))
            notes = [{"role": "user", "content": n} for n in self._notes]
            self._notes.clear()
            messages = [*close_dangling_calls(self.loop.messages), *notes, {"role": "user", "content": text}]
        return await self._turn(messages)

    def interrupt(self) -> bool:
        """Stop the current turn (the model call or the running command) as soon as possible.
        The conversation keeps everything up to that point; `send` continues it."""
        task = self._graph_task
        if task is None or task.done():
            return False
        self._interrupting = True
        task.cancel()
        return True

    @property
    def busy(self) -> bool:
        return self._graph_task is not None and not self._graph_task.done()

    async def _open(self, task: str) -> list[dict[str, Any]]:
        """Everything a conversation needs before its first model call."""
        from tools.git.snapshot import repo_info

        s = self.settings
        info = await asyncio.to_thread(repo_info, self.repo)
        try:
            await self._start_workspace(info)
        except BaseException:
            await self.model.aclose()
            raise
        try:
            self._writer = TrajectoryWriter(self.trajectory_path)
        except OSError as exc:
            await self.model.aclose()
            raise ConfigError(
                f"cannot write the trajectory to {self.trajectory_path}: {exc.strerror or exc}. "
                "Pass --trajectory FILE or set trajectory_dir to a writable place."
            ) from exc
        if self._resumed is None:
            self._writer.header(
                run_id=self.run_id,
                task=task,
                repo=str(self.repo),
                commit=info.head if info else None,
                branch=self.branch or (info.branch if info else None),
                base_tree=self.base_tree,
                model=self.model.name,
                config=s.model_dump(mode="json"),
                started_at=time.time(),
            )
        ctx = ToolContext(
            root=self.repo,
            env=self.env,
            settings={
                "command_timeout": s.command_timeout,
                "test_command": s.test_command,
                "test_timeout": s.test_timeout,
                "max_output_chars": s.max_output_chars,
                "cache_dir": str(workspace_cache_dir(self.repo)),
                "git_commit": s.git_commit,
            },
        )
        ctx.state.update(checkpoints=self.store, base_tree=self.base_tree, run_id=self.run_id)
        ctx.before_change = self.before_change
        self._ctx = ctx
        if s.edit_guard:
            from tools.code.guard import edit_guard

            ctx.state["after_write"] = edit_guard
        self.loop = self._build_loop(ctx)
        pricing = self.loop.pricing
        self.emit(
            ev.RunStarted(
                run_id=self.run_id,
                task=task,
                repo=str(self.repo),
                commit=info.head if info else None,
                model=self.model.name,
                trajectory=str(self.trajectory_path),
            )
        )
        if info is None and self.store is not None:
            self.emit(
                ev.Notice(
                    level="info",
                    message=f"{self.repo} is not a git repository: checkpoints go to a shadow repository "
                    f"in {self.store.git_dir.parent}",
                )
            )
        if s.max_cost is not None and not (pricing.input or pricing.output):
            self.emit(
                ev.Notice(
                    level="warning",
                    message=f"the cost limit cannot apply: no prices are known for {self.model.name} "
                    "(set price_input and price_output, USD per million tokens)",
                )
            )
        summary = describe_repo(self.repo, info)
        if self._resumed is not None:
            self.emit(ev.UserMessage(text=task))
            return [*close_dangling_calls(self._resumed), {"role": "user", "content": task}]
        if s.repo_map_tokens > 0:
            summary += await self._repo_map(s.repo_map_tokens, ctx)
        return self.initial_messages(summary)

    def _build_loop(self, ctx: ToolContext) -> AgentLoop:
        s = self.settings
        profile = getattr(self.model, "profile", None)
        if profile is not None:
            pricing = Pricing(
                input=profile.price_input,
                output=profile.price_output,
                cached_input=profile.price_cached_input,
            )
            budget = Budget.for_window(profile.context_window, profile.max_output)
            policy = profile.reasoning
            reply_cap = profile.max_output
        else:  # replayed or scripted models: settings only
            pricing = Pricing(input=s.price_input, output=s.price_output, cached_input=s.price_cached_input)
            budget = Budget.for_window(s.context_window or DEFAULT_CONTEXT_WINDOW, s.max_tokens)
            policy = s.reasoning or "omit"
            reply_cap = s.max_tokens
        return AgentLoop(
            model=self.model,
            registry=self.registry,
            ctx=ctx,
            emit=self.emit,
            limits=Limits(max_steps=s.max_steps, max_cost=s.max_cost, max_time=s.max_time),
            pricing=pricing,
            budget=budget,
            reasoning_policy=policy,
            max_output_chars=s.max_output_chars,
            reply_cap=reply_cap,
        )

    async def _invoke(self, messages: list[dict[str, Any]]) -> tuple[str, str]:
        from agent.graph import build_graph

        loop, s = self.loop, self.settings
        if self._graph is None:
            self._graph = build_graph(loop)
        step = len(loop.timings)
        loop.begin_turn(step)
        loop.messages = messages
        state = {"messages": messages, "step": step, "stop": None}
        config = {"recursion_limit": 2 * s.max_steps + 10}
        try:
            async with asyncio.timeout(s.max_time):
                final = await self._graph.ainvoke(state, config=config)
        except TimeoutError:
            return "time_limit", f"reached the time limit ({s.max_time:.0f} s)"
        loop.messages = final["messages"]
        return final.get("stop") or "error", final.get("stop_message", "")

    async def _turn(self, messages: list[dict[str, Any]]) -> ev.RunFinished:
        loop = self.loop
        started = time.monotonic()
        steps_before = len(loop.timings)
        reason, message = "error", ""
        outer_cancel = False
        self._interrupting = False
        self._graph_task = asyncio.ensure_future(self._invoke(messages))
        try:
            reason, message = await self._graph_task
        except asyncio.CancelledError:
            # Ours (interrupt) ends the turn; anyone else's (Ctrl-C) is re-raised once recorded.
            outer_cancel = not self._interrupting
            reason, message = "interrupted", "interrupted by the user"
        except ModelError as exc:
            reason, message = "model_error", str(exc)
            self.emit(ev.ErrorEvent(kind=type(exc).__name__, message=str(exc)))
        except Exception as exc:  # an internal bug: record it, keep the trajectory and the user's files
            reason, message = "error", f"internal error: {type(exc).__name__}: {exc}"
            self.emit(ev.ErrorEvent(kind=type(exc).__name__, message=message))
        finally:
            self._graph_task = None
            diff = await self._finish_workspace(message if reason in ("finished", "answered") else "")
            t = loop.totals
            finished = ev.RunFinished(
                reason=reason,  # type: ignore[arg-type]
                message=message,
                exit_code=EXIT_CODES.get(reason, EXIT_GAVE_UP),
                steps=len(loop.timings) - steps_before,
                diff=diff,
                prompt_tokens=t.prompt_tokens,
                completion_tokens=t.completion_tokens,
                cached_tokens=t.cached_tokens,
                cost=t.cost,
                duration=time.monotonic() - started,
                run_id=self.run_id,
                checkpoints=self.checkpoint_count,
                branch=self.branch,
                commit=self.commit,
            )
            self.last_finished = finished
            self.emit(finished)
        if outer_cancel:
            raise asyncio.CancelledError
        return finished

    async def close(self) -> None:
        """Write the trajectory's result line and release the model client. Idempotent."""
        if self._closed:
            return
        self._closed = True
        f = self.last_finished
        if self._writer is not None:
            if f is not None:
                self._writer.result(
                    reason=f.reason,
                    exit_code=f.exit_code,
                    diff=f.diff,
                    steps=len(self.loop.timings) if self.loop else 0,
                    cost=f.cost,
                    end_tree=self.end_tree,
                    branch=self.branch,
                    commit=self.commit,
                )
            self._writer.close()
        try:
            await asyncio.shield(self.model.aclose())
        except Exception:
            pass

    # ------------------------------------------------------------------ between turns (TUI)

    async def compact(self) -> None:
        if self.loop is not None and not self.busy:
            await self.loop.compact_now()

    def set_model(self, name: str) -> None:
        """/model: talk to another model from the next call on (same provider settings)."""
        settings = self.settings.model_copy(update={"model": name})
        model = build_model(settings, on_retry=self._on_retry)
        self.settings, self.model = settings, model
        if self.loop is not None:
            self.loop.model = model

    def current_diff(self) -> str:
        """/diff: everything changed since the conversation started."""
        if self.store is None or not self.base_tree:
            return ""
        return self.store.diff(self.base_tree, self.store.snapshot().tree)

    def undo_last(self) -> RestoreReport | None:
        """/undo: put the files back as they were before the agent's last change; repeated, it
        goes further back. The model is told at its next turn. None when there is nothing left."""
        if self.store is None or self.busy:
            return None
        changes = [c for c in self.store.list(self.run_id) if not c.label.startswith("before undo")]
        if self._undo_cursor is not None:
            changes = [c for c in changes if c.n < self._undo_cursor]
        now = self.store.snapshot().tree
        for cp in reversed(changes):
            if cp.tree != now:
                report = self.store.restore(cp, self.run_id)
                self._undo_cursor = cp.n
                what = (
                    "your changes: the files are back as they were when the conversation started"
                    if cp.n == 0
                    else f"your change '{cp.label}' and any after it: the files are back as they were before it"
                )
                self._notes.append(f"(The user undid {what}. Look again before relying on what you did.)")
                return report
        return None

    def resume_from(self, records: list[dict[str, Any]], path: Path | None = None) -> list[ev.Event]:
        """Continue a recorded conversation (`luban --continue`): same run id, same trajectory
        file (`path`, appended to), same checkpoints; the history is rebuilt from its events.
        Returns those events so a front end can show them."""
        if path is not None:
            self.trajectory_path = Path(path)
        header = records[0] if records and records[0].get("type") == "header" else {}
        self.run_id = header.get("run_id", self.run_id)
        self.task = header.get("task", self.task)
        events = []
        for record in records:
            if record.get("type") in ("header", "result"):
                continue
            try:
                events.append(ev.parse_event(record))
            except ValueError:  # a line from a newer or damaged file: skip it, keep the rest
                continue
        summary = describe_repo(self.repo, None)
        self._resumed = [*self.initial_messages(summary), *history_from_events(events)]
        return events


def close_dangling_calls(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """An interrupted turn can leave tool calls without results, which providers reject: answer
    them as not run."""
    if not messages:
        return messages
    answered = {m.get("tool_call_id") for m in messages if m.get("role") == "tool"}
    for i in range(len(messages) - 1, -1, -1):
        msg = messages[i]
        if msg.get("role") == "assistant" and msg.get("tool_calls"):
            missing = [c["id"] for c in msg["tool_calls"] if c.get("id") not in answered]
            extra = [
                {"role": "tool", "tool_call_id": cid, "content": "Not run: interrupted by the user."}
                for cid in missing
            ]
            return [*messages, *extra] if extra else messages
        if msg.get("role") == "user":
            break
    return messages


def history_from_events(events: list[ev.Event]) -> list[dict[str, Any]]:
    """The conversation as the model saw it, rebuilt from a trajectory's events (reasoning is
    not replayed; tool outputs are exactly what the model read)."""
    out: list[dict[str, Any]] = []
    for e in events:
        if isinstance(e, ev.AssistantMessage):
            msg: dict[str, Any] = {"role": "assistant", "content": e.content or ""}
            if e.tool_calls:
                msg["tool_calls"] = [
                    {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                    for c in e.tool_calls
                ]
            out.append(msg)
        elif isinstance(e, ev.ToolCallFinished):
            out.append({"role": "tool", "tool_call_id": e.call_id, "content": e.output})
        elif isinstance(e, ev.UserMessage):
            out.append({"role": "user", "content": e.text})
    # A resumed conversation always starts a new user turn: close what the last one left open.
    return close_dangling_calls(out)


def task_mentions(root: Path, task: str) -> tuple[list[str], list[str]]:
    """Files (that exist) and identifiers the task names: the repo map is personalised to them."""
    import re

    files, idents = [], []
    for word in re.findall(r"[\w./-]+", task):
        candidate = word.strip(".,:;'\"`()").removeprefix("./")
        if "/" in candidate or "." in candidate:
            if candidate and (root / candidate).is_file():
                files.append(candidate)
                continue
        idents.extend(re.findall(r"[A-Za-z_][A-Za-z0-9_]{2,}", candidate))
    return list(dict.fromkeys(files)), list(dict.fromkeys(idents))


def workspace_cache_dir(repo: Path) -> Path:
    """Per-workspace cache (repo-map tags...), outside the repository so it never shows in git."""
    import hashlib

    digest = hashlib.sha1(str(repo.resolve()).encode()).hexdigest()[:12]
    return state_dir() / "cache" / f"{repo.name}-{digest}"


def describe_repo(root: Path, info: Any) -> str:
    """A few lines that orient the model: branch, commit, top-level entries."""
    lines = [f"Repository: {root}"]
    if info is not None:
        lines.append(
            f"Git: branch {info.branch or '(detached)'}, commit {info.head[:12] if info.head else '(none)'}"
        )
    try:
        entries = sorted(
            p.name + ("/" if p.is_dir() else "") for p in root.iterdir() if not p.name.startswith(".")
        )
    except OSError:
        entries = []
    if entries:
        shown = entries[:60]
        more = f" ... and {len(entries) - 60} more" if len(entries) > 60 else ""
        lines.append("Top-level entries: " + ", ".join(shown) + more)
    return "\n".join(lines) + "\n"
