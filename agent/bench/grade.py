"""`luban bench grade`: run each instance's tests on a prediction and grade it as SWE-bench does.

Per instance, in a fresh workspace at ``base_commit`` with its environment (``environment.py``):

1. the model patch is applied with the official harness's fallbacks (``git apply --verbose``,
   ``--3way``, ``--reject``, then ``patch --batch --forward --fuzz=5 -p1``), the tree reset between
   tries, and a patch found already applied (``git apply --check --reverse``) counts as applied;
2. ``eval.sh`` runs as SWE-bench's eval script does: the spec's ``eval_commands`` and ``install``, the
   test files reset to ``base_commit``, the test patch applied, the test command between the
   ``>>>>> Start/End Test Output`` markers and its exit code recorded after them;
3. the log is graded by the ``swebench`` package itself (its log parsers and ``get_eval_report``).

Outputs follow ``swebench.harness.run_evaluation``: per instance
``logs/<run_id>/<model>/<instance_id>/{patch.diff, eval.sh, test_output.txt, run_instance.log,
report.json}`` and a summary ``<model>.<run_id>.json`` with the official keys (schema_version 2).
An instance whose ``report.json`` exists is not graded again (resume); ``--force`` regrades.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from agent.bench.instances import Instance

START = ">>>>> Start Test Output"
END = ">>>>> End Test Output"
EXIT_CODE = ">>>>> Test Exit Code"
APPLY_FAIL = ">>>>> Patch Apply Failed"
APPLY_PASS = ">>>>> Applied Patch"
TESTS_TIMEOUT = ">>>>> Tests Timed Out"
GIT_APPLY_CMDS = (
    "git apply --verbose",
    "git apply --verbose --3way",
    "git apply --verbose --reject",
    "patch --batch --forward --fuzz=5 -p1 -i",
)
NON_TEST_EXTS = (".json", ".png", "csv", ".txt", ".md", ".jpg", ".jpeg", ".pkl", ".yml", ".yaml", ".toml")
HEREDOC = "EOF_114329324912"
STATUSES = ("resolved", "partial", "unresolved", "empty_patch", "error")


class GradeError(RuntimeError):
    """The instance could not be graded (workspace, environment, patch); the message says which step."""


# ------------------------------------------------------------------------------------ eval script


def _diff_files(patch: str) -> list[tuple[str, bool]]:
    """(path after the change, existed before) for each file of a git diff."""
    files: list[tuple[str, bool]] = []
    for block in re.split(r"^(?=diff --git )", patch, flags=re.M):
        m = re.match(r"diff --git a/(\S+) b/(\S+)", block)
        if not m:
            continue
        new_file = re.search(r"^(--- /dev/null|new file mode)", block, flags=re.M) is not None
        files.append((m.group(2), not new_file))
    return files


def test_files(inst: Instance) -> list[str]:
    """Files of the test patch that exist at base_commit (reset before and after the tests)."""
    return [path for path, existed in _diff_files(inst.test_patch) if existed]


def test_directives(inst: Instance) -> list[str]:
    """What the test command is given: the test patch's files minus data files (SWE-bench's rule);
    django's runner takes dotted module names."""
    paths = [p for p, _ in _diff_files(inst.test_patch) if not p.endswith(NON_TEST_EXTS)]
    if inst.repo == "django/django":
        paths = [p.removesuffix(".py").removeprefix("tests/").replace("/", ".") for p in paths]
    return paths


def test_command(inst: Instance, spec) -> str:
    """The instance's own test command when its ``eval_script`` has one between the markers (SWE-bench
    v5 datasets), else the spec's ``test_cmd`` followed by the test directives."""
    script = inst.raw.get("eval_script") or ""
    if START in script and END in script:
        between = script.split(START, 1)[1].split(END, 1)[0]
        lines = [x for x in between.splitlines()[1:] if x.strip() and not x.startswith(": '")]
        if lines:
            return "\n".join(lines)
    return " ".join([spec.test_cmd or "pytest -rA", *test_directives(inst)])


def eval_script(inst: Instance, spec, ws: Path, env_setup: str, *, install: bool) -> str:
    base = inst.base_commit
    reset = (
        f"git checkout {base} {' '.join(test_files(inst))}"
        if test_files(inst)
        else ": no test files to reset"
    )
    lines = [
        "#!/bin/bash",
        "set -uxo pipefail",
        env_setup,
        f"cd {shlex.quote(str(ws))}",
        *spec.eval_commands,
        "git status",
        f"git -c core.fileMode=false diff {base}",
    ]
    if install and spec.install:
        from agent.bench.environment import unpinned_retry

        lines.append(unpinned_retry(spec.install))
    lines += [
        reset,
        f"git apply -v - <<'{HEREDOC}'\n{inst.test_patch}\n{HEREDOC}",
        f": '{START}'",
        test_command(inst, spec),
        "SWEBENCH_TEST_EXIT_CODE=$?",
        f": '{END}'",
        f'echo "{EXIT_CODE}: $SWEBENCH_TEST_EXIT_CODE"',
        reset,
    ]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------- applying patches


def _sh(cmd: str, cwd: Path, timeout: float = 600) -> tuple[int, str]:
    from tools.git.checkpoints import clean_git_env

    try:
        p = subprocess.run(
            ["bash", "-c", cmd], cwd=cwd, capture_output=True, text=True, env=clean_git_env(), timeout=timeout,
            errors="replace",
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return 124, f"timed out after {timeout:.0f} s: {cmd}"
    return p.returncode, p.stdout + p.stderr


def apply_patch(ws: Path, patch_file: Path, log: list[str]) -> bool:
    """Apply ``patch_file`` in ``ws`` as the official harness does; the attempts go to ``log``."""
    out = ""
    for attempt, cmd in enumerate(GIT_APPLY_CMDS):
        if attempt:  # a failed try (notably --reject) leaves partial state behind
            _sh("git checkout -- . ; git clean -fd", ws)
        code, out = _sh(f"{cmd} {shlex.quote(str(patch_file))}", ws)
        if code == 0:
            log.append(f"{APPLY_PASS} with {cmd}:\n{out}")
            return True
        log.append(f"Failed to apply patch: {cmd}\n{out}")
    code, _ = _sh(f"git apply --check --reverse {shlex.quote(str(patch_file))}", ws)
    if code == 0:
        log.append(f"{APPLY_PASS}: verified already applied")
        return True
    log.append(f"{APPLY_FAIL}:\n{out}")
    return False


# ------------------------------------------------------------------------------------------ grading


@dataclass(frozen=True)
class GradeJob:
    instance: Instance
    prediction: dict  # instance_id, model_name_or_path, model_patch
    log_dir: Path  # logs/<run_id>/<model>/<instance_id>
    work_dir: Path  # workspace and venv go here, removed afterwards unless keep
    repo_cache: Path | None
    allow_network: bool
    specs_file: Path | None
    env_cache: Path
    python: str | None = None
    date_pin: bool = True
    timeout: float = 1800.0
    keep: bool = False
    run_empty: bool = False  # run the tests on an empty patch too (the unmodified base: a self-check)


@dataclass
class GradeResult:
    instance_id: str
    status: str  # one of STATUSES
    report: dict = field(default_factory=dict)  # the official per-instance report (report.json)
    error: str = ""
    timings: dict = field(default_factory=dict)  # workspace, environment, patch, tests, total (seconds)
    notes: list = field(default_factory=list)


def _status_of(report: dict) -> str:
    from swebench.harness.constants import FAIL_TO_PASS, PASS_TO_PASS

    if report.get("resolved"):
        return "resolved"
    ts = report.get("tests_status") or {}
    f2p, p2p = ts.get(FAIL_TO_PASS, {}), ts.get(PASS_TO_PASS, {})
    f2p_ok, f2p_bad = len(f2p.get("success", [])), len(f2p.get("failure", []))
    if f2p_ok and f2p_bad and not p2p.get("failure"):
        return "partial"
    return "unresolved"


def _test_spec(inst: Instance, spec):
    from swebench.types import TestSpec

    parser = inst.raw.get("log_parser") or spec.log_parser or "parse_log_pytest"
    return TestSpec(
        instance_id=inst.instance_id,
        image=str(inst.raw.get("image") or ""),
        eval_script_list=[],
        repo=inst.repo,
        version=str(inst.version),
        FAIL_TO_PASS=list(inst.fail_to_pass),
        PASS_TO_PASS=list(inst.pass_to_pass),
        log_parser=parser,
        eval_type=str(inst.raw.get("eval_type") or "pass_and_fail"),
    )


def grade_one(job: GradeJob) -> GradeResult:
    """Grade one prediction; never raises for the instance's own failures (they become ``error``)."""
    from agent.bench.environment import EnvBuildError, EnvOptions, installs_project, prepare_env, run_to_log
    from agent.bench.specs import load_specs, spec_for
    from agent.bench.workspace import WorkspaceError, prepare_workspace

    inst, pred = job.instance, job.prediction
    iid = inst.instance_id
    log_dir = Path(job.log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    run_log: list[str] = []
    timings: dict[str, float] = {}
    started = time.monotonic()
    patch = pred.get("model_patch")
    if patch in ("", None) and not job.run_empty:  # the harness never runs these: counted as empty patches
        return GradeResult(iid, "empty_patch", {iid: {"patch_is_None": patch is None, "patch_exists": False}})

    ws = Path(job.work_dir) / "workspace"
    venv = Path(job.work_dir) / "venv"
    result = GradeResult(iid, "error")
    try:
        shutil.rmtree(job.work_dir, ignore_errors=True)
        t = time.monotonic()
        prepare_workspace(inst, ws, repo_cache=job.repo_cache, allow_network=job.allow_network)
        timings["workspace"] = time.monotonic() - t
        spec = spec_for(inst, load_specs(job.specs_file))
        t = time.monotonic()
        opts = EnvOptions(cache_dir=job.env_cache, python=job.python, date_pin=job.date_pin)
        # pre_install now (the instance image's step); install runs inside eval.sh, as upstream
        built = prepare_env(ws, inst, spec, venv, opts, install=False)
        has_metadata = installs_project(spec, ws)
        timings["environment"] = time.monotonic() - t
        result.notes = list(built.notes)
        run_log.append(f"environment: base {built.base} ({'cached' if built.base_cached else 'built'}), "
                       f"Python {built.python.version}, date pin {built.cutoff or 'none'}")  # fmt: skip

        t = time.monotonic()
        patch_file = log_dir / "patch.diff"
        patch_file.write_text(patch if not patch or patch.endswith("\n") else patch + "\n", encoding="utf-8")
        if patch and not apply_patch(ws, patch_file, run_log):
            raise GradeError(f"{APPLY_FAIL}: see {log_dir / 'run_instance.log'}")
        timings["patch"] = time.monotonic() - t

        script = eval_script(inst, spec, ws, built.shell_setup(), install=has_metadata)
        (log_dir / "eval.sh").write_text(script, encoding="utf-8")
        t = time.monotonic()
        test_output = log_dir / "test_output.txt"
        test_output.unlink(missing_ok=True)
        code = run_to_log(["bash", str(log_dir / "eval.sh")], cwd=ws, log=test_output, timeout=job.timeout)
        timings["tests"] = time.monotonic() - t
        timed_out = code is None
        if timed_out:
            with open(test_output, "a", encoding="utf-8") as f:
                f.write(f"\n{TESTS_TIMEOUT}: after {job.timeout:.0f} s\n")

        from swebench.harness.grading import get_eval_report

        report = get_eval_report(_test_spec(inst, spec), pred, str(test_output), include_tests_status=True)
        (log_dir / "report.json").write_text(json.dumps(report, indent=4) + "\n", encoding="utf-8")
        result.report = report
        result.status = _status_of(report[iid])
        if timed_out:
            result.error = f"tests timed out after {job.timeout:.0f} s"
    except (WorkspaceError, EnvBuildError, GradeError) as exc:
        result.error = str(exc)
    except Exception as exc:  # a bug or an unexpected failure: keep grading the others
        result.error = f"{type(exc).__name__}: {exc}"
    finally:
        timings["total"] = time.monotonic() - started
        result.timings = {k: round(v, 3) for k, v in timings.items()}
        if result.error:
            run_log.append(f"error: {result.error}")
        (log_dir / "run_instance.log").write_text("\n".join(run_log) + "\n", encoding="utf-8")
        if not job.keep:
            shutil.rmtree(job.work_dir, ignore_errors=True)
    return result


# ------------------------------------------------------------------------------------------ reports


def safe_model_dir(model: str) -> str:
    return model.replace("/", "__")


def load_predictions(path: Path) -> dict[str, dict]:
    """instance_id → prediction, from JSONL (or a JSON list / dict keyed by id, as the harness takes)."""
    from agent.bench.instances import InstanceError

    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InstanceError(f"{path}: no such predictions file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise InstanceError(f"{path}: cannot read predictions: {e}") from None
    rows: list[tuple[str, object]] = []
    stripped = text.lstrip()
    if stripped.startswith(("[", "{")):
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            data = None  # JSON Lines (or broken: the line loop below names the line)
        if isinstance(data, dict) and "instance_id" in data:
            data = [data]  # a one-line JSONL file
        if isinstance(data, dict):
            rows = [(f"{path}: key {k}", v) for k, v in data.items()]
        elif isinstance(data, list):
            rows = [(f"{path}: item {i}", v) for i, v in enumerate(data)]
    if not rows:
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                rows.append((f"{path}:{n}", json.loads(line)))
            except json.JSONDecodeError as e:
                raise InstanceError(f"{path}:{n}: malformed JSON: {e.msg}") from None
    preds: dict[str, dict] = {}
    for where, obj in rows:
        if not isinstance(obj, dict) or not isinstance(obj.get("instance_id"), str):
            raise InstanceError(f"{where}: a prediction needs an instance_id string")
        patch = obj.get("model_patch")
        if patch is not None and not isinstance(patch, str):
            raise InstanceError(f"{where}: model_patch must be a string or null")
        preds[obj["instance_id"]] = {
            "instance_id": obj["instance_id"],
            "model_name_or_path": str(obj.get("model_name_or_path") or "unknown"),
            "model_patch": patch,
        }
    return preds


def summary_report(
    instances: list[Instance], predictions: dict[str, dict], results: dict[str, GradeResult]
) -> dict:
    """The run summary with the keys of swebench's ``make_run_report`` (schema_version 2)."""
    ids = [i.instance_id for i in instances]
    by = {s: sorted(i for i in ids if i in results and results[i].status == s) for s in STATUSES}
    completed = sorted(
        i for i in ids if i in results and results[i].status in ("resolved", "partial", "unresolved")
    )
    incomplete = sorted(i for i in ids if i not in predictions)
    unresolved = sorted(by["partial"] + by["unresolved"])
    infra = sorted(i for i in completed if (results[i].report.get(i) or {}).get("infra_failure"))
    reasons = {
        i: results[i].report[i]["infra_failure_reason"]
        for i in completed
        if "infra_failure_reason" in (results[i].report.get(i) or {})
    }
    return {
        "total_instances": len(ids),
        "submitted_instances": len(set(predictions) & set(ids)),
        "completed_instances": len(completed),
        "resolved_instances": len(by["resolved"]),
        "unresolved_instances": len(unresolved),
        "infra_failure_instances": len(infra),
        "ambiguous_failure_instances": 0,
        "empty_patch_instances": len(by["empty_patch"]),
        "error_instances": len(by["error"]),
        "completed_ids": completed,
        "incomplete_ids": incomplete,
        "empty_patch_ids": by["empty_patch"],
        "submitted_ids": sorted(set(predictions) & set(ids)),
        "resolved_ids": by["resolved"],
        "unresolved_ids": unresolved,
        "infra_failure_ids": infra,
        "ambiguous_failure_ids": [],
        "failure_reasons": dict(sorted(reasons.items())),
        "error_ids": by["error"],
        "schema_version": 2,
        # Luban's additions, beside the official keys
        "partial_ids": by["partial"],
        "instances": {
            i: {"status": r.status, "error": r.error, "timings": r.timings, "notes": r.notes}
            for i, r in sorted(results.items())
        },
    }


def _counts(report: dict, key: str) -> str:
    ts = report.get("tests_status") or {}
    part = ts.get(key) or {}
    ok, bad = len(part.get("success", [])), len(part.get("failure", []))
    return f"{ok}/{ok + bad}" if ok + bad else "-"


def format_table(results: list[GradeResult]) -> str:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="luban bench grade", show_lines=False)
    for col in ("instance", "status", "F2P", "P2P", "seconds", "detail"):
        table.add_column(col, overflow="fold")
    colour = {
        "resolved": "green",
        "partial": "yellow",
        "unresolved": "red",
        "empty_patch": "dim",
        "error": "magenta",
    }
    for r in results:
        rep = r.report.get(r.instance_id) or {}
        detail = r.error or "; ".join(r.notes)
        table.add_row(
            r.instance_id,
            f"[{colour[r.status]}]{r.status}[/]",
            _counts(rep, "FAIL_TO_PASS"),
            _counts(rep, "PASS_TO_PASS"),
            f"{r.timings.get('total', 0):.1f}",
            detail[:200],
        )
    console = Console(file=sys.stdout, width=160, force_terminal=False)
    with console.capture() as cap:
        console.print(table)
    return cap.get()


def previous_result(log_dir: Path, iid: str) -> GradeResult | None:
    """The result of an earlier grading of this instance (resume), from its report.json."""
    try:
        report = json.loads((log_dir / "report.json").read_text(encoding="utf-8"))
        return GradeResult(iid, _status_of(report[iid]), report, notes=["from an earlier run"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


# ------------------------------------------------------------------------------------------ command


def cmd_bench_grade(args) -> int:
    from agent.bench.executors import ExecutorError, run_jobs
    from agent.bench.instances import InstanceError, load_instances
    from agent.bench.options import env_cache_dir, validate_common
    from agent.bench.specs import SpecError, load_specs

    problem = validate_common(args)
    if problem:
        print(f"luban: {problem}", file=sys.stderr)
        return 2
    if sum(map(bool, (args.predictions, args.gold, args.empty))) != 1:
        print("luban: bench grade needs one of --predictions FILE, --gold or --empty", file=sys.stderr)
        return 2
    try:
        instances = load_instances(Path(args.instances).expanduser(), ids=args.ids, slice_=args.slice)
        if args.specs:
            load_specs(Path(args.specs).expanduser())  # a broken specs file fails here, once
        if args.gold or args.empty:
            name = "gold" if args.gold else "empty"
            preds = {
                i.instance_id: {
                    "instance_id": i.instance_id,
                    "model_name_or_path": name,
                    "model_patch": i.patch if args.gold else "",
                }
                for i in instances
            }
        else:
            preds = load_predictions(Path(args.predictions).expanduser())
    except (InstanceError, SpecError) as exc:
        print(f"luban: {exc}", file=sys.stderr)
        return 2

    out = Path(args.out).expanduser().resolve()
    run_id = args.run_id or time.strftime("luban-%Y%m%d-%H%M%S")
    jobs: list[GradeJob] = []
    results: dict[str, GradeResult] = {}
    for inst in instances:
        pred = preds.get(inst.instance_id)
        if pred is None:
            continue  # incomplete: counted in the summary, nothing to run
        log_dir = out / "logs" / run_id / safe_model_dir(pred["model_name_or_path"]) / inst.instance_id
        earlier = None if args.force else previous_result(log_dir, inst.instance_id)
        if earlier is not None:
            results[inst.instance_id] = earlier
            continue
        jobs.append(
            GradeJob(
                instance=inst,
                prediction=pred,
                log_dir=log_dir,
                work_dir=out / "work" / run_id / inst.instance_id,
                repo_cache=Path(args.repo_cache).expanduser().resolve() if args.repo_cache else None,
                allow_network=args.network,
                specs_file=Path(args.specs).expanduser().resolve() if args.specs else None,
                env_cache=env_cache_dir(args),
                python=args.python,
                date_pin=not args.no_date_pin,
                timeout=args.timeout,
                keep=args.keep,
                run_empty=args.empty,
            )
        )
    if results:
        print(f"bench grade: {len(results)} instance(s) already graded in run {run_id} (--force regrades)",
              file=sys.stderr)  # fmt: skip
    if len(preds) and not (set(preds) & {i.instance_id for i in instances}):
        print("luban: no prediction matches an instance of the selection", file=sys.stderr)
        return 2

    total = len(jobs)

    def progress(index: int, result: GradeResult | None, exc: BaseException | None) -> None:
        iid = jobs[index].instance.instance_id
        if result is None:  # the executor lost the job (worker died...)
            result = GradeResult(iid, "error", error=f"{type(exc).__name__}: {exc}")
        results[iid] = result
        n = sum(1 for j in jobs if j.instance.instance_id in results)
        extra = f": {result.error.splitlines()[0]}" if result.error else ""
        print(f"[{n}/{total}] {iid} {result.status} ({result.timings.get('total', 0):.1f}s){extra}",
              file=sys.stderr, flush=True)  # fmt: skip

    started = time.monotonic()
    interrupted = False
    try:
        run_jobs(grade_one, jobs, executor=args.executor, workers=args.workers, address=args.address,
                 memory_limit_mb=args.memory_limit, on_done=progress)  # fmt: skip
    except ExecutorError as exc:
        print(f"luban: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        interrupted = True

    report = summary_report(instances, preds, results)
    model = next(iter(preds.values()))["model_name_or_path"] if preds else "none"
    out.mkdir(parents=True, exist_ok=True)
    report_file = out / f"{safe_model_dir(model)}.{run_id}.json"
    report_file.write_text(json.dumps(report, indent=4) + "\n", encoding="utf-8")
    ordered = [results[i.instance_id] for i in instances if i.instance_id in results]
    print(format_table(ordered), end="")
    print(
        f"bench grade: {report['resolved_instances']} resolved, {len(report['partial_ids'])} partial, "
        f"{report['unresolved_instances'] - len(report['partial_ids'])} unresolved, "
        f"{report['empty_patch_instances']} empty patch, {report['error_instances']} error, "
        f"{len(report['incomplete_ids'])} without prediction, of {report['total_instances']}; "
        f"wall {time.monotonic() - started:.1f}s; report: {report_file}"
    )
    if interrupted:
        print("luban: interrupted; graded instances are saved, run again with the same --run-id to resume",
              file=sys.stderr)  # fmt: skip
        return 130
    return 1 if report["error_instances"] else 0
