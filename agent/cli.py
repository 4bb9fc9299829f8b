"""`luban` entry point. Only argparse and the standard library are imported at start-up, so
`luban --help` is instant; each subcommand imports what it needs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

EXIT_USAGE = 2

DESCRIPTION = """\
Luban: an agentic coding assistant for open-weight models (Kimi K2, Qwen3-Coder, DeepSeek, GLM,
MiniMax, gpt-oss...) on any OpenAI-compatible server.
"""

EPILOG = """\
examples:
  luban                                        open the terminal UI in this repository
  luban "make the failing test pass"           open it and start that task
  luban --continue                             reopen this repository's last conversation
  luban inspect RUN_ID_OR_TRAJECTORY           step through a recorded run
  luban demo                                   watch the agent fix a real bug (no API key needed)
  luban exec "make the failing test pass" --provider moonshot
  luban exec "fix issue #12" --model qwen3-coder --base-url http://127.0.0.1:8000/v1 --json
  luban exec --task-file issue.md --approval auto-edit --output-patch fix.patch --summary pr.md
  luban undo                                   put the files back as they were before the last run

exit codes: 0 done, 1 gave up or hit a limit, 2 usage or config error, 3 model or provider failure,
130 interrupted (Ctrl-C).
"""


def add_model_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--model", "-m", help="model id on the server, or replay:TRAJECTORY.jsonl")
    g.add_argument(
        "--provider", help="a provider preset (moonshot, dashscope, openrouter, vllm, ollama, ...)"
    )
    g.add_argument("--base-url", help="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1")
    g.add_argument("--api-key-env", help="name of the environment variable holding the API key")


def add_safety_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("safety")
    g.add_argument(
        "--approval",
        choices=("read-only", "auto-edit", "full-auto"),
        help="what runs without asking: read-only, auto-edit (edits and tests) or full-auto "
        "(default). Anything else is refused in a non-interactive run.",
    )
    g.add_argument(
        "--allow", action="append", metavar="CMD", help="also allow this tool or command prefix (repeatable)"
    )
    g.add_argument("--deny", action="append", metavar="CMD", help="always refuse this tool or command prefix")
    g.add_argument(
        "--no-checkpoints",
        action="store_true",
        help="do not record the tree before each change (luban undo will not work for this run)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="luban",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    ex = sub.add_parser(
        "exec", help="run a task headless (CI, scripts)", formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ex.add_argument(
        "task",
        nargs="?",
        help="what to do, e.g. 'make the failing test in tests/test_x.py pass' (or --task-file, or stdin)",
    )
    ex.add_argument("--task-file", help="read the task from FILE ('-' for stdin)")
    ex.add_argument("--repo", default=".", help="the repository to work in (default: current directory)")
    ex.add_argument("--json", action="store_true", help="print one JSON event per line on stdout")
    ex.add_argument("--max-steps", type=int, help="stop after N model calls (default 100)")
    ex.add_argument("--max-cost", type=float, help="stop once the run has cost USD (needs prices)")
    ex.add_argument("--max-time", type=float, help="stop after S seconds of wall time (default 3600)")
    ex.add_argument("--test-command", help="the command `run_tests` uses, e.g. 'pytest -x tests'")
    ex.add_argument("--trajectory", type=Path, help="where to write the trajectory (default: the state dir)")
    ex.add_argument(
        "--no-edit-guard", action="store_true", help="keep edits even when they introduce syntax errors"
    )
    ex.add_argument("--output-patch", type=Path, help="write the run's changes as a git patch to FILE")
    ex.add_argument("--summary", type=Path, help="write a markdown summary (for a pull-request body) to FILE")
    ex.add_argument(
        "--branch",
        nargs="?",
        const="",
        metavar="NAME",
        help="work on a new branch (default name luban/<task words>) and commit the result there",
    )
    add_safety_flags(ex)
    add_model_flags(ex)

    undo = sub.add_parser("undo", help="restore the files as they were before a run (or a checkpoint of it)")
    undo.add_argument("--run", help="the run to undo (default: the latest run in this repository)")
    undo.add_argument(
        "--to", type=int, metavar="N", help="restore checkpoint N of the run (default 0: its start)"
    )
    undo.add_argument("--repo", default=".", help="the repository (default: current directory)")

    cps = sub.add_parser("checkpoints", help="list the checkpoints Luban recorded in this repository")
    cps.add_argument("--run", help="only this run")
    cps.add_argument("--repo", default=".", help="the repository (default: current directory)")
    cps.add_argument("--json", action="store_true", help="print JSON instead of a table")
    cps.add_argument("--drop", metavar="RUN", help="delete the checkpoints of run RUN")

    models = sub.add_parser("models", help="list provider presets and model families, or a server's models")
    models.add_argument(
        "--remote", action="store_true", help="ask the server for its model ids (GET /models)"
    )
    models.add_argument("--json", action="store_true", help="print JSON instead of a table")
    add_model_flags(models)

    mp = sub.add_parser("map", help="print the ranked repository map (tree-sitter + PageRank)")
    mp.add_argument("path", nargs="?", default=".", help="the repository (default: current directory)")
    mp.add_argument("--budget", type=int, default=2048, help="size of the map in tokens (default 2048)")
    mp.add_argument("--focus", nargs="*", default=[], help="files or identifiers to rank first")

    doctor = sub.add_parser(
        "doctor", help="check a provider or server: key, URL, /models, a tool-call round trip"
    )
    doctor.add_argument("--json", action="store_true", help="print the checks as JSON")
    add_model_flags(doctor)

    insp = sub.add_parser("inspect", help="step through a recorded run (read-only viewer)")
    insp.add_argument("trajectory", help="a trajectory file, or a run id from the state dir")

    demo = sub.add_parser(
        "demo", help="fix a real bug in a throw-away repo with a recorded model (no API key)"
    )
    demo.add_argument("--dir", type=Path, help="create the demo repository here instead of a temp dir")
    demo.add_argument("--json", action="store_true", help="print JSON events instead of human output")

    bench = sub.add_parser("bench", help="run the agent on SWE-bench-style instances")
    bench_sub = bench.add_subparsers(dest="bench_command", metavar="SUBCOMMAND")
    from agent.bench.options import add_common_flags

    br = bench_sub.add_parser("run", help="solve instances headless and write predictions.jsonl (resumable)")
    add_common_flags(br)
    br.add_argument(
        "--out",
        type=Path,
        help="output directory: predictions.jsonl, results.jsonl, trajectories/, workspaces/, venvs/",
    )
    br.add_argument(
        "--env",
        choices=("venv", "none"),
        default="venv",
        help="venv: build each instance's environment from its spec (default); none: use this machine's",
    )
    br.add_argument("--max-steps", type=int, help="per instance: stop after N model calls (default 100)")
    br.add_argument("--max-cost", type=float, help="per instance: stop once it has cost USD (needs prices)")
    br.add_argument("--max-time", type=float, help="per instance: stop after S seconds (default 3600)")
    bg = bench_sub.add_parser(
        "grade", help="run the instances' tests on predictions and grade them as SWE-bench does"
    )
    add_common_flags(bg)
    bg.add_argument("--predictions", type=Path, help="predictions file (instance_id, model_name_or_path, model_patch)")
    bg.add_argument("--gold", action="store_true", help="grade the instances' gold patches (checks environments)")
    bg.add_argument(
        "--empty",
        action="store_true",
        help="run the tests on the unchanged base_commit (empty patches): each should grade unresolved",
    )
    bg.add_argument("--out", type=Path, default=Path("."), help="where logs/ and the report go (default: .)")
    bg.add_argument("--run-id", help="names this grading run; the same id resumes it (default: a timestamp)")
    bg.add_argument("--timeout", type=float, default=1800.0, help="seconds for one instance's tests (default 1800)")
    bg.add_argument("--keep", action="store_true", help="keep each instance's workspace and venv")
    bg.add_argument("--force", action="store_true", help="grade again instances already graded in this run")
    add_model_flags(br)
    return parser


def build_tui_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="luban", description="Open Luban's terminal UI (see `luban --help` for the commands)."
    )
    p.add_argument("task", nargs="?", help="start this task right away")
    p.add_argument("--repo", default=".", help="the repository to work in (default: current directory)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--continue", dest="cont", action="store_true", help="reopen this repository's last run")
    g.add_argument("--resume", metavar="RUN", help="reopen a run: its id or its trajectory file")
    p.add_argument("--approval", choices=("read-only", "auto-edit", "full-auto"))
    add_model_flags(p)
    return p


def wants_tui(argv: list[str]) -> bool:
    """`luban`, `luban "task"`, `luban --continue`...: anything whose first word is not a
    subcommand (and not --help/--version) opens the TUI."""
    if any(a in ("-h", "--help", "--version") for a in argv[:1]):
        return False
    commands = build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    return not any(a in commands for a in argv[:1])


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if wants_tui(argv):
        from agent.config import ConfigError

        try:
            return cmd_tui(build_tui_parser().parse_args(argv))
        except ConfigError as exc:
            print(f"luban: {exc}", file=sys.stderr)
            return EXIT_USAGE
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from importlib.metadata import version

        print(f"luban {version('luban')}")
        return 0
    if args.command is None:
        parser.print_help()
        return 0
    from agent.config import ConfigError

    try:
        if args.command == "exec":
            return cmd_exec(args)
        if args.command in ("models", "doctor"):
            from agent.config import load_settings

            flags = {k: getattr(args, k) for k in ("model", "provider", "base_url", "api_key_env")}
            settings = load_settings(Path.cwd(), flags)
            if args.command == "models":
                from agent.catalog import run_models

                return run_models(settings, remote=args.remote, json_output=args.json)
            from agent.doctor import run_doctor

            return run_doctor(settings, json_output=args.json)
        if args.command == "map":
            return cmd_map(args)
        if args.command in ("undo", "checkpoints"):
            from agent import undo

            return undo.cmd_undo(args) if args.command == "undo" else undo.cmd_checkpoints(args)
        if args.command == "inspect":
            path = find_trajectory(args.trajectory)
            from tui.inspect import run_inspect

            return run_inspect(path)
        if args.command == "bench":
            if args.bench_command == "grade":
                from agent.bench.grade import cmd_bench_grade

                return cmd_bench_grade(args)
            if args.bench_command != "run":
                parser.parse_args(["bench", "--help"])
            from agent.bench.run import cmd_bench_run

            return cmd_bench_run(args)
        if args.command == "demo":
            from agent.demo import run_demo

            return run_demo(args.dir, json_output=args.json)
    except ConfigError as exc:
        print(f"luban: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("luban: interrupted", file=sys.stderr)
        return 130
    parser.error(f"unknown command {args.command}")
    return EXIT_USAGE


def cmd_exec(args: argparse.Namespace) -> int:
    from agent.config import ConfigError, load_settings

    repo = Path(args.repo).expanduser()
    if not repo.is_dir():
        raise ConfigError(f"--repo {args.repo}: not a directory")
    task = read_task(args)
    flags = {
        "model": args.model,
        "provider": args.provider,
        "base_url": args.base_url,
        "api_key_env": args.api_key_env,
        "max_steps": args.max_steps,
        "max_cost": args.max_cost,
        "max_time": args.max_time,
        "test_command": args.test_command,
        "edit_guard": False if args.no_edit_guard else None,
        "approval": args.approval,
        "allow_commands": args.allow,
        "deny_commands": args.deny,
        "checkpoints": False if args.no_checkpoints else None,
    }
    settings = load_settings(repo.resolve(), flags)
    return run_headless(
        settings,
        repo,
        task,
        json_output=args.json,
        trajectory=args.trajectory,
        output_patch=args.output_patch,
        summary=args.summary,
        branch=args.branch,
    )


def read_task(args: argparse.Namespace) -> str:
    """The task from the argument, --task-file (- is stdin), or piped stdin. Never waits on a
    terminal: with nothing given and stdin a TTY, it is a usage error."""
    from agent.config import ConfigError

    if args.task and args.task_file:
        raise ConfigError("give the task as an argument or with --task-file, not both")
    if args.task_file == "-" or (not args.task and not args.task_file and not sys.stdin.isatty()):
        text = sys.stdin.read()
        source = "stdin"
    elif args.task_file:
        path = Path(args.task_file).expanduser()
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(f"--task-file {args.task_file}: no such file") from None
        except UnicodeDecodeError:
            raise ConfigError(f"--task-file {args.task_file}: not UTF-8 text") from None
        except OSError as exc:
            raise ConfigError(f"--task-file {args.task_file}: {exc.strerror or exc}") from None
        source = args.task_file
    else:
        text, source = args.task or "", "the argument"
    if not text.strip():
        raise ConfigError(
            f'the task is empty ({source}): say what Luban should do, e.g. luban exec "fix the failing test"'
        )
    return text.strip()


def cmd_tui(args: argparse.Namespace) -> int:
    from agent.config import ConfigError, load_settings

    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise ConfigError(
            "the terminal UI needs a terminal; for scripts and CI use `luban exec TASK` "
            "(it reads the task from stdin too)"
        )
    repo = Path(args.repo).expanduser()
    if not repo.is_dir():
        raise ConfigError(f"--repo {args.repo}: not a directory")
    repo = repo.resolve()
    flags = {k: getattr(args, k) for k in ("model", "provider", "base_url", "api_key_env", "approval")}
    # The TUI asks before commands by default; `luban exec` cannot ask, so it defaults to full-auto.
    settings = load_settings(repo, flags, defaults={"approval": "auto-edit"})
    resume = None
    if args.cont:
        resume = latest_run(settings, repo)
    elif args.resume:
        resume = find_trajectory(args.resume, settings)
    from tui.app import run_tui

    return run_tui(settings, repo, task=args.task, resume=resume)


def runs_dir(settings=None) -> Path:
    from agent.config import state_dir

    if settings is not None and settings.trajectory_dir:
        return Path(settings.trajectory_dir).expanduser()
    return state_dir() / "runs"


def latest_run(settings, repo: Path) -> Path:
    from agent.config import ConfigError
    from agent.trajectory import find_runs

    runs = find_runs(runs_dir(settings), repo)
    if not runs:
        raise ConfigError(f"no earlier run of {repo} to continue (runs are kept in {runs_dir(settings)})")
    return runs[-1][0]


def find_trajectory(ref: str, settings=None) -> Path:
    """A trajectory file given as a path or as a run id."""
    from agent.config import ConfigError

    path = Path(ref).expanduser()
    if path.is_file():
        return path
    by_id = runs_dir(settings) / f"{ref}.jsonl"
    if by_id.is_file():
        return by_id
    raise ConfigError(f"{ref}: no such trajectory file or run id (runs are kept in {runs_dir(settings)})")


def cmd_map(args: argparse.Namespace) -> int:
    from agent.config import ConfigError

    root = Path(args.path).expanduser()
    if not root.is_dir():
        raise ConfigError(f"{args.path}: not a directory")
    if args.budget < 64:
        raise ConfigError("--budget must be at least 64 tokens")
    from agent.session import workspace_cache_dir
    from tools.code.repomap import render_map

    files = [f for f in args.focus if (root / f).exists()]
    idents = [f for f in args.focus if f not in files]
    text = render_map(root.resolve(), args.budget, files, workspace_cache_dir(root), idents)
    print(
        text.rstrip()
        if text.strip()
        else "(no source files in a supported language: Python, JavaScript, TypeScript, Go, Rust, Java)"
    )
    return 0


def run_headless(
    settings,
    repo: Path,
    task: str,
    *,
    json_output: bool,
    trajectory: Path | None = None,
    model=None,
    output_patch: Path | None = None,
    summary: Path | None = None,
    branch: str | None = None,
) -> int:
    """Run one Session to the end with a headless renderer (never asks anything: approvals the
    policy leaves open are denied); returns the exit code. The patch and the summary are written
    however the run ends, Ctrl-C included."""
    import asyncio

    from agent.render import HumanRenderer, JsonRenderer
    from agent.session import Session
    from agent.summary import RunSummary

    for target in (output_patch, summary):
        if target is not None and not target.expanduser().resolve().parent.is_dir():
            from agent.config import ConfigError

            raise ConfigError(f"cannot write {target}: its directory does not exist")
    renderer = JsonRenderer() if json_output else HumanRenderer()
    collector = RunSummary(patch_path=str(output_patch) if output_patch else None)
    session = Session(
        settings,
        repo,
        task,
        model=model,
        subscribers=[renderer, collector],
        trajectory_path=trajectory,
        branch=branch,
    )
    code = 130
    try:
        outcome = asyncio.run(session.run())
        code = outcome.finished.exit_code
    except KeyboardInterrupt:
        print(f"luban: interrupted; the trajectory is kept at {session.trajectory_path}", file=sys.stderr)
    finally:
        write_reports(session, collector, output_patch, summary, json_output)
    if code != 130 and not json_output:
        print(f"  trajectory: {session.trajectory_path}")
    return code


def write_reports(
    session, collector, output_patch: Path | None, summary: Path | None, json_output: bool
) -> None:
    out = sys.stderr if json_output else sys.stdout
    if output_patch is not None:
        try:
            patch = session.patch()
            output_patch.expanduser().write_text(patch, encoding="utf-8", errors="surrogateescape")
            print(f"  patch: {output_patch} ({len(patch.splitlines())} lines)", file=out)
        except Exception as exc:  # reports never hide the run's own result
            print(f"luban: could not write the patch to {output_patch}: {exc}", file=sys.stderr)
    if summary is not None:
        try:
            summary.expanduser().write_text(collector.markdown(), encoding="utf-8")
            print(f"  summary: {summary}", file=out)
        except Exception as exc:
            print(f"luban: could not write the summary to {summary}: {exc}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
