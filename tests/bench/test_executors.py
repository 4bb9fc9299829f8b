"""agent/bench/executors.py for real: real thread pools, spawned processes and a local Ray (started once,
by the one Ray test that needs it). Job functions live in tests/bench/jobs.py so workers can import them."""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import time
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import pytest

from agent.bench.executors import EXECUTORS, ExecutorError, run_jobs
from tests.bench.jobs import TwoArgError, job

needs_ray = pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="ray is not installed")


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[int, object, BaseException | None]] = []

    def __call__(self, index: int, result: object, exc: BaseException | None) -> None:
        self.calls.append((index, result, exc))


@pytest.fixture(scope="module")
def outside_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A job module outside the project (and outside the editable install's path): workers only find
    it if the executor passes the driver's import path on (spawn does; for Ray run_jobs must)."""
    directory = tmp_path_factory.mktemp("outside")
    (directory / "luban_outside_jobs.py").write_text(
        "from tests.bench.jobs import job as _job\n\n\ndef job(spec):\n    return _job(spec)\n"
    )
    return directory


@pytest.mark.parametrize("executor", ["thread", "process", pytest.param("ray", marks=needs_ray)])
def test_results_in_job_order_concurrently_with_failures(
    executor: str, tmp_path: Path, outside_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.syspath_prepend(str(outside_dir))
    outside_job = importlib.import_module("luban_outside_jobs").job
    jobs = [
        ("meet", str(tmp_path), "a", "b"),  # jobs 0 and 1 only finish if both run at once
        ("meet", str(tmp_path), "b", "a"),
        ("raise", "boom in job 2"),
        ("value", 4),
        ("two_arg",),
    ]
    done = Recorder()

    results = run_jobs(outside_job, jobs, executor=executor, workers=2, on_done=done)

    assert results[:2] == ["a", "b"]
    assert isinstance(results[2], ValueError) and str(results[2]) == "boom in job 2"
    assert results[3] == 40
    assert sorted(index for index, _, _ in done.calls) == [0, 1, 2, 3, 4]  # once per job
    for index, result, exc in done.calls:
        if isinstance(results[index], BaseException):
            assert result is None and exc is results[index]
        else:
            assert exc is None and result == results[index]
    if executor == "thread":
        assert isinstance(results[4], TwoArgError)
    else:
        # raised in another process: the job's traceback comes along as the cause...
        assert "boom in job 2" in str(results[2].__cause__) and "jobs.py" in str(results[2].__cause__)
        # ...and an exception that cannot be unpickled keeps its type, message and traceback as text
        text = str(results[4])
        assert isinstance(results[4], RuntimeError)
        assert "tests.bench.jobs.TwoArgError: build failed: no compiler" in text
        assert "Remote traceback" in text and 'raise TwoArgError("build", "no compiler")' in text
    if executor == "ray":
        import ray

        assert not ray.is_initialized()  # run_jobs started its local Ray, so it stopped it too


def test_process_worker_death_fails_only_its_job() -> None:
    jobs = [("exit", 3), ("value", 1), ("sigkill",), ("value", 2)]
    done = Recorder()

    results = run_jobs(job, jobs, executor="process", workers=2, on_done=done)

    assert isinstance(results[0], BrokenProcessPool)
    assert str(results[0]) == "worker process died (exit code 3)"
    assert isinstance(results[2], BrokenProcessPool)
    assert str(results[2]).startswith("worker process died (killed by signal SIGKILL")
    assert results[1] == 10 and results[3] == 20
    assert len(done.calls) == 4


def test_process_memory_limit() -> None:
    results = run_jobs(
        job, [("alloc", 800), ("alloc", 16)], executor="process", workers=2, memory_limit_mb=400
    )

    assert isinstance(results[0], MemoryError)
    assert results[1] == 16 * 1024 * 1024


@pytest.mark.parametrize("executor", ["thread", "process"])
def test_interrupt_in_on_done_leaves_the_rest_unstarted(executor: str, tmp_path: Path) -> None:
    jobs = [("mark", str(tmp_path), str(i), 0) for i in range(4)]
    done = Recorder()

    def interrupt(index: int, result: object, exc: BaseException | None) -> None:
        done(index, result, exc)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_jobs(job, jobs, executor=executor, workers=1, on_done=interrupt)

    assert done.calls == [(0, "0", None)]
    time.sleep(0.3)  # a job that had been handed on would have marked itself by now
    assert sorted(p.name for p in tmp_path.iterdir()) == ["started-0"]


def test_process_interrupt_terminates_running_workers(tmp_path: Path) -> None:
    # job 1 sleeps for a minute; the interrupt after job 0 must kill its process, not wait for it
    jobs = [("mark", str(tmp_path), "quick", 0), ("mark", str(tmp_path), "slow", 60)]
    jobs += [("mark", str(tmp_path), f"later{i}", 0) for i in range(2)]
    slow = tmp_path / "started-slow"

    def interrupt(index: int, result: object, exc: BaseException | None) -> None:
        deadline = time.monotonic() + 30
        while not slow.exists() or not slow.read_text():
            assert time.monotonic() < deadline, "the slow job never started"
            time.sleep(0.02)
        raise KeyboardInterrupt

    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        run_jobs(job, jobs, executor="process", workers=2, on_done=interrupt)

    pid = int(slow.read_text())
    deadline = time.monotonic() + 10
    while _alive(pid):
        assert time.monotonic() < deadline, "the running worker was not terminated"
        time.sleep(0.05)
    assert time.monotonic() - start < 40
    assert not list(tmp_path.glob("started-later*"))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"executor": "dask"}, "choose one of: thread, process, ray"),
        ({"executor": "thread", "workers": 0}, "workers must be an integer >= 1"),
        ({"executor": "process", "workers": -1}, "workers must be an integer >= 1"),
        ({"executor": "thread", "memory_limit_mb": 100}, "needs the 'process' executor"),
        ({"executor": "thread", "address": "auto"}, "needs the 'ray' executor"),
    ],
)
def test_bad_arguments(kwargs: dict, expected: str) -> None:
    with pytest.raises(ExecutorError, match=expected):
        run_jobs(job, [("value", 1)], **kwargs)


def test_no_jobs_starts_nothing() -> None:
    assert EXECUTORS == ("thread", "process", "ray")
    for executor in EXECUTORS:
        assert run_jobs(job, [], executor=executor, workers=3) == []


def test_ray_missing_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # makes `import ray` raise ImportError
    with pytest.raises(ExecutorError, match=r"pip install 'luban\[ray\]'"):
        run_jobs(job, [("value", 1)], executor="ray")


@needs_ray
@pytest.mark.parametrize("address", ["127.0.0.1:1", "ray://127.0.0.1:1"])
def test_ray_unreachable_address_fails_fast(address: str) -> None:
    import ray

    start = time.monotonic()
    with pytest.raises(ExecutorError, match="127.0.0.1:1"):
        run_jobs(job, [("value", 1)], executor="ray", address=address)
    assert time.monotonic() - start < 10
    assert not ray.is_initialized()
