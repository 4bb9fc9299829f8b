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
from tools.git.checkpoints import CheckpointError, CheckpointStore
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
            if s.checkpoints:
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
        from tools.git.snapshot import repo_info

        started = time.monotonic()
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
        s = self.settings
        self._writer.header(
            run_id=self.run_id,
            task=self.task,
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
            },
        )
        ctx.state.update(checkpoints=self.store, base_tree=self.base_tree, run_id=self.run_id)
        ctx.before_change = self.before_change
        self._ctx = ctx
        if s.edit_guard:
            from tools.code.guard import edit_guard

            ctx.state["after_write"] = edit_guard
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
        loop = AgentLoop(
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
        self.emit(
            ev.RunStarted(
                run_id=self.run_id,
                task=self.task,
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
        if s.repo_map_tokens > 0:
            summary += await self._repo_map(s.repo_map_tokens, ctx)
        state: dict[str, Any] = {"messages": self.initial_messages(summary), "step": 0, "stop": None}
        reason, message = "error", ""
        cancelled = False
        try:
            from agent.graph import build_graph

            graph = build_graph(loop)
            config = {"recursion_limit": 2 * s.max_steps + 10}
            try:
                async with asyncio.timeout(s.max_time):
                    final = await graph.ainvoke(state, config=config)
                reason = final.get("stop") or "error"
                message = final.get("stop_message", "")
            except TimeoutError:
                reason, message = "time_limit", f"reached the time limit ({s.max_time:.0f} s)"
        except asyncio.CancelledError:
            cancelled = True
            reason, message = "interrupted", "interrupted by the user"
        except ModelError as exc:
            reason, message = "model_error", str(exc)
            self.emit(ev.ErrorEvent(kind=type(exc).__name__, message=str(exc)))
        except Exception as exc:  # an internal bug: record it, keep the trajectory and the user's files
            reason, message = "error", f"internal error: {type(exc).__name__}: {exc}"
            self.emit(ev.ErrorEvent(kind=type(exc).__name__, message=message))
        finally:
            diff = await self._finish_workspace(message if reason in ("finished", "answered") else "")
            t = loop.totals
            finished = ev.RunFinished(
                reason=reason,  # type: ignore[arg-type]
                message=message,
                exit_code=EXIT_CODES.get(reason, EXIT_GAVE_UP),
                steps=len(loop.timings),
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
            self.emit(finished)
            self._writer.result(
                reason=reason,
                exit_code=finished.exit_code,
                diff=diff,
                steps=finished.steps,
                cost=t.cost,
                end_tree=self.end_tree,
                branch=self.branch,
                commit=self.commit,
            )
            self._writer.close()
            try:
                await asyncio.shield(self.model.aclose())
            except Exception:
                pass
        if cancelled:
            raise asyncio.CancelledError
        return RunOutcome(finished=finished, trajectory=self.trajectory_path, loop=loop)


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
