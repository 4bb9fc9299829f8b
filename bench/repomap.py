"""Repository map speed and memory: Luban's RepoMap against aider's, on Django 5.1.4.

The corpus is Django's source distribution from PyPI (2,788 Python files), downloaded once with
`pip download --no-deps --no-binary :all: django==5.1.4` into ~/.cache/luban/bench and extracted
there (never committed). aider-chat 0.86.2 is installed into its own venv,
~/.cache/luban/bench/aider-venv, on first use. Nothing but the package index is contacted.

Each measurement runs in a fresh process, on a fresh copy of the corpus, with a 2,000-token map:

  cold         no tag cache: discover files, parse them all, rank, render
  warm         cache on disk from the cold run, new process
  incremental  same process as warm, after appending a function to one file
               (Luban: refresh() + build(); aider: get_repo_map(force_refresh=True))
  peak memory  ru_maxrss of the process doing the cold build (Luban also reports its largest
               tagging worker: it parses in a process pool)

Times are the build inside the process (after imports); "process" adds interpreter start-up and
imports. Both maps count tokens the same way, characters / 3.5: aider's RepoMap is given a stub
model whose `token_count` is `len(text) / 3.5` (offline; a real aider Model would look up model
metadata and a tokenizer), and a minimal `io` object (read_text, tool_output, ...).
aider is given every .py file as `other_files` and no chat files, as in its own start-up map.

    python bench/repomap.py [--budget 2000] [--runs 3] [--skip-aider]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BENCH = Path.home() / ".cache" / "luban" / "bench"
DJANGO = "django==5.1.4"
CORPUS = BENCH / "Django-5.1.4"
AIDER_VENV = BENCH / "aider-venv"
AIDER = "aider-chat==0.86.2"
EDITED = "django/db/models/query.py"
MARKER = "\n\ndef bench_incremental_marker(value):\n    return value\n"


# --------------------------------------------------------------------------- set-up


def ensure_corpus() -> Path:
    if (CORPUS / "django" / "db" / "models" / "query.py").is_file():
        return CORPUS
    BENCH.mkdir(parents=True, exist_ok=True)
    sdist = BENCH / "Django-5.1.4.tar.gz"
    if not sdist.is_file():
        print(f"downloading {DJANGO} (sdist) from the package index ...", flush=True)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--no-binary",
                ":all:",
                DJANGO,
                "-d",
                str(BENCH),
            ],
            check=True,
        )
    with tarfile.open(sdist) as tar:
        tar.extractall(BENCH, filter="data")
    return CORPUS


def ensure_aider() -> Path:
    python = AIDER_VENV / "bin" / "python"
    probe = [str(python), "-c", "import aider.repomap"]
    if python.is_file() and subprocess.run(probe, capture_output=True).returncode == 0:
        return python
    print(f"installing {AIDER} into {AIDER_VENV} (once) ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(AIDER_VENV)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", AIDER], check=True)
    return python


def fresh_copy(corpus: Path, work: Path, name: str) -> Path:
    target = work / name
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(corpus, target, symlinks=True)
    return target


# --------------------------------------------------------------------------- children


def luban_child(root: Path, cache: Path, budget: int, edit: bool) -> dict:
    """Runs inside a fresh process: one build, optionally an edit and an incremental build."""
    t0 = time.perf_counter()
    from tools.code.repomap import RepoMap, estimate_tokens

    t1 = time.perf_counter()
    rm = RepoMap(root, cache)
    text = rm.build(budget_tokens=budget)
    t2 = time.perf_counter()
    out = {
        "import_s": t1 - t0,
        "build_s": t2 - t1,
        "files": len(rm.files),
        "tagged": rm.stats.get("tagged"),
        "workers": rm.stats.get("workers", 0),
        "tokens": estimate_tokens(text),
        "map": text,
    }
    if edit:
        t3 = time.perf_counter()
        rm.refresh()
        rm.build(budget_tokens=budget)
        out["noop_refresh_s"] = time.perf_counter() - t3
        with open(root / EDITED, "a", encoding="utf-8") as fh:
            fh.write(MARKER)
        t3 = time.perf_counter()
        changed = rm.refresh()
        rm.build(budget_tokens=budget)
        out["incremental_s"] = time.perf_counter() - t3
        out["incremental_changed"] = changed
        out["incremental_seen"] = bool(rm.find_symbol("bench_incremental_marker", fuzzy=False))
        out["focus_map"] = rm.build(focus_files=[EDITED], budget_tokens=budget)
    out["maxrss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out["children_maxrss_mib"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return out


AIDER_DRIVER = textwrap.dedent(
    '''
    """Build aider's repo map the way aider does at start-up, offline."""
    import json, os, resource, sys, time

    root, budget, edit, edited, marker = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1", sys.argv[4], sys.argv[5]
    t0 = time.perf_counter()
    from aider.repomap import RepoMap
    t1 = time.perf_counter()


    class Model:  # offline token counting, the same estimate Luban uses
        def token_count(self, text):
            return len(text) / 3.5


    class IO:  # the parts of aider.io.InputOutput that RepoMap calls
        def read_text(self, fname, silent=False):
            try:
                with open(fname, encoding="utf-8") as fh:
                    return fh.read()
            except (OSError, UnicodeError):
                return None

        def tool_output(self, *args, **kwargs):
            pass

        tool_warning = tool_error = tool_output


    files = sorted(
        os.path.join(d, f) for d, _, names in os.walk(root) for f in names if f.endswith(".py")
    )
    rm = RepoMap(map_tokens=budget, root=root, main_model=Model(), io=IO())
    text = rm.get_repo_map(chat_files=[], other_files=files) or ""
    t2 = time.perf_counter()
    out = {"import_s": t1 - t0, "build_s": t2 - t1, "files": len(files), "tokens": len(text) / 3.5, "map": text}
    if edit:
        t3 = time.perf_counter()
        rm.get_repo_map(chat_files=[], other_files=files, force_refresh=True)
        out["noop_refresh_s"] = time.perf_counter() - t3
        with open(os.path.join(root, edited), "a", encoding="utf-8") as fh:
            fh.write(marker)
        t3 = time.perf_counter()
        rm.get_repo_map(chat_files=[], other_files=files, force_refresh=True)
        out["incremental_s"] = time.perf_counter() - t3
        tags = rm.get_tags(os.path.join(root, edited), edited)
        out["incremental_seen"] = any(t.name == "bench_incremental_marker" for t in tags)
    out["maxrss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out["children_maxrss_mib"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print("@@RESULT@@" + json.dumps(out))
    '''
)


def run_child(cmd: list[str], cwd: Path | None = None) -> dict:
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    line = next(ln for ln in reversed(proc.stdout.splitlines()) if ln.startswith("@@RESULT@@"))
    result = json.loads(line[len("@@RESULT@@") :])
    result["process_s"] = wall
    return result


def luban_run(root: Path, cache: Path, budget: int, edit: bool) -> dict:
    cmd = [sys.executable, __file__, "--child", str(root), str(cache), str(budget), "1" if edit else "0"]
    return run_child(cmd)


def aider_run(python: Path, driver: Path, root: Path, budget: int, edit: bool) -> dict:
    cmd = [str(python), str(driver), str(root), str(budget), "1" if edit else "0", EDITED, MARKER]
    return run_child(cmd, cwd=root)


# --------------------------------------------------------------------------- measurement


def measure(name: str, once, runs: int, cold_runs: int, work: Path, corpus: Path, clear_cache) -> dict:
    """`cold_runs` cold runs (fresh copy, no cache; the median is reported), then `runs` times: a
    warm run (new process, the cache kept) and an incremental run (new process: warm build, append
    a function to one file, refresh)."""
    colds = []
    for i in range(cold_runs):
        print(f"{name}: cold build {i + 1}/{cold_runs} ...", flush=True)
        root = fresh_copy(corpus, work, name)
        clear_cache(root)
        colds.append(once(root, False))
    cold = {
        key: statistics.median(c[key] for c in colds) for key, v in colds[0].items() if isinstance(v, float)
    }
    cold.update({key: v for key, v in colds[-1].items() if not isinstance(v, float)})
    cold["runs"] = [c["build_s"] for c in colds]
    warm_runs, incremental_runs = [], []
    for i in range(runs):
        print(f"{name}: warm and incremental runs {i + 1}/{runs} ...", flush=True)
        shutil.copy2(corpus / EDITED, root / EDITED)  # undo the previous run's edit
        warm_runs.append(once(root, False))
        shutil.copy2(corpus / EDITED, root / EDITED)
        once(root, False)  # let the cache catch up with the restored file
        incremental_runs.append(once(root, True))
    return {"cold": cold, "warm": warm_runs, "incremental": incremental_runs}


def median(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def map_files(text: str) -> list[str]:
    files = []
    for line in text.splitlines():
        if line and not line[0].isspace() and line.rstrip().endswith(":") and "│" not in line:
            files.append(line.rstrip()[:-1])
    return files


def report(luban: dict, aider: dict | None, budget: int) -> None:
    rows = [
        # label, phase, key, format
        ("files mapped", "cold", "files", "{:,.0f}"),
        ("cold build (s)", "cold", "build_s", "{:.2f}"),
        ("cold, whole process (s)", "cold", "process_s", "{:.2f}"),
        ("warm build (s)", "warm", "build_s", "{:.3f}"),
        ("warm, whole process (s)", "warm", "process_s", "{:.2f}"),
        ("no-op refresh + build (s)", "incremental", "noop_refresh_s", "{:.3f}"),
        ("incremental, 1 file edited (s)", "incremental", "incremental_s", "{:.3f}"),
        ("peak memory, cold (MiB)", "cold", "maxrss_mib", "{:.0f}"),
        ("map size (tokens, chars/3.5)", "warm", "tokens", "{:,.0f}"),
    ]

    def value(result: dict, phase: str, key: str) -> float:
        return result["cold"][key] if phase == "cold" else median(result[phase], key)

    runs = len(luban["warm"])
    cold_runs = len(luban["cold"]["runs"])
    print()
    print(
        f"Repository map on Django 5.1.4, {budget}-token map "
        f"(medians: cold of {cold_runs} runs, warm and incremental of {runs})"
    )
    header = f"{'':34} {'Luban':>10} {'aider 0.86.2':>13} {'aider/Luban':>12}"
    print(header)
    print("-" * len(header))
    for label, phase, key, fmt in rows:
        mine = value(luban, phase, key)
        other = ratio = ""
        if aider is not None:
            theirs = value(aider, phase, key)
            other = fmt.format(theirs)
            if key not in ("files", "tokens") and mine:
                ratio = f"{theirs / mine:.1f}x"
        print(f"{label:34} {fmt.format(mine):>10} {other:>13} {ratio:>12}")
    print()
    cold = luban["cold"]
    if cold.get("workers"):
        print(
            f"Luban's cold build parsed {cold['tagged']:,} files in {cold['workers']} worker processes "
            f"(spawned); the largest child process peaked at {cold['children_maxrss_mib']:.0f} MiB, "
            "not included above."
        )
    warm_build = median(luban["warm"], "build_s")
    targets = [
        ("cold < 3 s", cold["build_s"] < 3),
        ("warm < 0.3 s", warm_build < 0.3),
        ("peak memory < 150 MiB", cold["maxrss_mib"] < 150),
    ]
    print("Cold build times (s): Luban " + ", ".join(f"{t:.2f}" for t in cold["runs"]), end="")
    if aider is not None:
        print("; aider " + ", ".join(f"{t:.2f}" for t in aider["cold"]["runs"]), end="")
    print()
    print("Luban targets: " + ", ".join(f"{t} {'met' if ok else 'MISSED'}" for t, ok in targets))
    seen = all(r.get("incremental_seen") for r in luban["incremental"])
    print(f"Incremental: the appended function is found after refresh(): {'yes' if seen else 'NO'}")

    focus = luban["incremental"][-1]["focus_map"]
    files = map_files(focus)
    print()
    print(f"Sensible? Luban map with focus on {EDITED}:")
    print(f"  first file: {files[0] if files else '-'} ({'ok' if files and files[0] == EDITED else 'WRONG'})")
    print(f"  `class QuerySet` listed: {'yes' if 'class QuerySet(' in focus else 'NO'}")
    print(f"  next files: {', '.join(files[1:6])}")
    lf = map_files(luban["warm"][-1]["map"])
    print(f"Unfocused Luban map, first files (rank order): {', '.join(lf[:5])}")
    if aider is not None:
        amap = aider["warm"][-1]["map"]
        af = map_files(amap)
        print(f"Unfocused aider map, first files (aider sorts by name): {', '.join(af[:5])}")
        print(
            f"Files in both unfocused maps: {len(set(lf) & set(af))} (Luban shows {len(lf)}, aider {len(af)})"
        )


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        root, cache, budget, edit = sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5] == "1"
        print("@@RESULT@@" + json.dumps(luban_child(Path(root), Path(cache), budget, edit)))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=3, help="warm + incremental runs per tool (median)")
    parser.add_argument("--cold-runs", type=int, default=3, help="cold runs per tool (median)")
    parser.add_argument("--skip-aider", action="store_true")
    parser.add_argument("--show-map", action="store_true", help="print Luban's focused map")
    args = parser.parse_args()

    corpus = ensure_corpus()
    with tempfile.TemporaryDirectory(prefix="luban-bench-") as tmp:
        work = Path(tmp)
        cache = work / "luban-cache"

        def luban_once(root: Path, edit: bool) -> dict:
            return luban_run(root, cache, args.budget, edit)

        luban = measure(
            "luban",
            luban_once,
            args.runs,
            args.cold_runs,
            work,
            corpus,
            lambda root: shutil.rmtree(cache, True),
        )
        aider = None
        if not args.skip_aider:
            python = ensure_aider()
            driver = work / "aider_driver.py"
            driver.write_text(AIDER_DRIVER)

            def aider_once(root: Path, edit: bool) -> dict:
                return aider_run(python, driver, root, args.budget, edit)

            def clear(root: Path) -> None:
                for old in root.glob(".aider.tags.cache*"):
                    shutil.rmtree(old, True)

            aider = measure("aider", aider_once, args.runs, args.cold_runs, work, corpus, clear)
        report(luban, aider, args.budget)
        if args.show_map:
            print()
            print(luban["warm"][-1]["focus_map"])


if __name__ == "__main__":
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    main()
