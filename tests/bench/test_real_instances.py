"""Real SWE-bench instances (../shared/data/swebench/) graded with real environments from PyPI.

They need a local mirror of the instance's repository: LUBAN_REPO_CACHE, or /work/.mirror (the layout
of the snapshot fetcher). Without one they skip, saying which mirrors were looked for.

By default one instance (the first with a mirror, smallest repo first) is graded twice: its gold patch
must be resolved and the unchanged base (--empty) unresolved. LUBAN_BENCH_ALL=1 grades every shared
instance that has a mirror (minutes per repository for the first environment build);
LUBAN_BENCH_ENV_CACHE keeps the base environments between runs.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from agent.bench.instances import Instance, load_instances
from agent.bench.workspace import find_mirror
from tests.support import run_luban

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "swebench"
MIRRORS = Path(os.environ.get("LUBAN_REPO_CACHE") or "/work/.mirror")
ENV_CACHE = os.environ.get("LUBAN_BENCH_ENV_CACHE")  # keep base environments between runs
PREFERRED = ("pallets/flask", "marshmallow-code/marshmallow", "sqlfluff/sqlfluff", "pytest-dev/pytest")
# instances whose tests cannot pass on a machine without outbound network
NEEDS_NETWORK = {
    "psf__requests-5414": "TestTimeout connects to 10.255.255.1 and expects a timeout, not 'network unreachable'",
}
pytestmark = pytest.mark.timeout(3600)


def _with_mirrors() -> tuple[list[tuple[Path, Instance]], str]:
    files = sorted(SHARED.glob("*.jsonl"))
    if not files:
        return [], f"no shared instances under {SHARED}"
    if not MIRRORS.is_dir():
        return [], f"no repo cache at {MIRRORS} (set LUBAN_REPO_CACHE to a directory of mirrors)"
    found, repos = [], set()
    for f in files:
        for inst in load_instances(f):
            repos.add(inst.repo)
            if find_mirror(MIRRORS, inst.repo) is not None:
                found.append((f, inst))
    if not found:
        return [], f"no mirror under {MIRRORS} for any of: {', '.join(sorted(repos))}"
    return found, ""


def _grade(tmp_path: Path, file: Path, ids: list[str], mode: str, workers: int = 1):
    out = tmp_path / "graded"
    run = run_luban(
        ["bench", "grade", "--instances", str(file), "--ids", *ids, f"--{mode}", "--repo-cache", str(MIRRORS),
         "--out", str(out), "--run-id", mode, "--workers", str(workers), "--env-cache", ENV_CACHE or str(tmp_path / "envs")],
        tmp_path / "home", timeout=3500,
    )  # fmt: skip
    report = (
        json.loads((out / f"{mode}.{mode}.json").read_text())
        if (out / f"{mode}.{mode}.json").exists()
        else {}
    )
    return run, report


def test_one_real_instance_gold_resolved_and_base_unresolved(tmp_path):
    found, why = _with_mirrors()
    if not found:
        pytest.skip(why)
    rank = {repo: n for n, repo in enumerate(PREFERRED)}
    file, inst = min(found, key=lambda fi: rank.get(fi[1].repo, len(rank)))
    run, report = _grade(tmp_path, file, [inst.instance_id], "gold")
    assert report.get("resolved_ids") == [inst.instance_id], run.stderr + run.stdout
    run, report = _grade(tmp_path, file, [inst.instance_id], "empty")
    assert report.get("unresolved_ids") == [inst.instance_id], run.stderr + run.stdout


@pytest.mark.skipif(
    os.environ.get("LUBAN_BENCH_ALL") != "1", reason="LUBAN_BENCH_ALL=1 grades every shared instance"
)
def test_every_shared_instance_with_a_mirror_gold_resolved(tmp_path):
    found, why = _with_mirrors()
    if not found:
        pytest.skip(why)
    by_file: dict[Path, list[str]] = {}
    for f, inst in found:
        by_file.setdefault(f, []).append(inst.instance_id)
    failures = []
    for f, ids in by_file.items():
        run, report = _grade(tmp_path / f.stem, f, ids, "gold", workers=2)
        for iid in ids:
            if iid not in report.get("resolved_ids", []) and iid not in NEEDS_NETWORK:
                failures.append(f"{iid}: {report.get('instances', {}).get(iid, {})}")
    assert not failures, "\n".join(failures)
