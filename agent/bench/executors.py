"""Run independent per-instance jobs (one SWE-bench instance = one job) on a chosen executor.

`run_jobs` keeps at most ``workers`` jobs in flight, reports each result through ``on_done`` as it
finishes (in the caller's thread, so the caller can append to a results file without locks) and
returns all results in job order. A job that raises never stops the run: its exception object is
its result. Jobs not yet handed to the executor never start once the caller is interrupted.

Why three executors:

- ``thread``: cheap, starts instantly and shares the caller's process. Right when a job mostly
  waits (model server, subprocesses); a job that leaks memory or crashes takes the run down with it.
- ``process``: each job runs in its own fresh spawned process (a one-job ``ProcessPoolExecutor``), so
  an instance cannot leak memory or state into the next one, its memory goes back to the OS when it
  ends, ``memory_limit_mb`` caps its address space, and a worker that dies (OOM kill, segfault,
  ``os._exit``) fails only its own job.
- ``ray``: spreads the jobs over a Ray cluster (or a local Ray when no address is given). Every
  node needs luban installed (``pip install 'luban[ray]'``) in the same Python/Ray versions as the
  driver; the driver's project paths are put on the workers' ``PYTHONPATH`` so a source checkout
  works on a single machine too.
"""

from __future__ import annotations

import os
import pickle
import sys
import traceback
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

J = TypeVar("J")
R = TypeVar("R")

EXECUTORS = ("thread", "process", "ray")


class ExecutorError(RuntimeError):
    """Executor cannot be used (unknown name, ray not installed, cannot connect to --address...). Message says what to do."""


def run_jobs(
    fn: Callable[[J], R],
    jobs: Sequence[J],
    *,
    executor: str = "thread",
    workers: int = 1,
    address: str | None = None,
    memory_limit_mb: int | None = None,
    on_done: Callable[[int, R | None, BaseException | None], None] | None = None,
) -> list[R | BaseException]:
    """Run ``fn(job)`` for every job; return the results in the order of ``jobs``.

    ``fn`` must be a top-level (picklable) function and the jobs picklable values (process/ray).
    A job that raised gives its exception object, both in the returned list and in
    ``on_done(index, None, exc)``; successful jobs give ``on_done(index, result, None)``.

    ``address`` (ray only): cluster address ("auto", "ray://host:10001", "host:6379"); None starts a
    local Ray with ``workers`` CPUs (or uses ``RAY_ADDRESS`` when set, as Ray does).
    ``memory_limit_mb`` (process only): RLIMIT_AS of each worker process and what it spawns.

    On KeyboardInterrupt (or any exception from ``on_done``) jobs not yet started are dropped,
    running ones are stopped where the executor can (process: terminated; ray: force-cancelled;
    thread: left to finish, Python cannot stop a thread) and the exception is re-raised.
    """
    if executor not in EXECUTORS:
        raise ExecutorError(f"unknown executor {executor!r}; choose one of: {', '.join(EXECUTORS)}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ExecutorError(f"workers must be an integer >= 1 (got {workers!r})")
    if memory_limit_mb is not None:
        if executor != "process":
            raise ExecutorError("memory_limit_mb needs the 'process' executor (--executor process)")
        if memory_limit_mb < 1:
            raise ExecutorError(f"memory_limit_mb must be >= 1 (got {memory_limit_mb!r})")
    if address is not None and executor != "ray":
        raise ExecutorError("address is a Ray cluster address; it needs the 'ray' executor (--executor ray)")

    jobs = list(jobs)
    if not jobs:
        return []  # nothing to do: don't spawn pools or start Ray for it
    if executor == "thread":
        backend: _Backend = _ThreadBackend(workers)
    elif executor == "process":
        backend = _ProcessBackend(memory_limit_mb)
    else:
        backend = _RayBackend(workers, address, fn)
    try:
        return _drive(backend, fn, jobs, workers, on_done)
    finally:
        backend.close()


def _drive(
    backend: _Backend,
    fn: Callable[[Any], Any],
    jobs: list[Any],
    workers: int,
    on_done: Callable[[int, Any, BaseException | None], None] | None,
) -> list[Any]:
    # Submitting only `workers` jobs at a time (instead of all at once) is what guarantees that a
    # Ctrl-C leaves the rest unstarted, and it keeps the Ray object store free of queued arguments.
    results: list[Any] = [None] * len(jobs)
    todo = deque(range(len(jobs)))
    running: dict[Any, int] = {}
    try:
        while todo or running:
            while todo and len(running) < workers:
                index = todo.popleft()
                running[backend.submit(fn, jobs[index])] = index
            for handle in backend.wait(list(running)):
                index = running.pop(handle)
                value, exc = backend.outcome(handle)
                results[index] = exc if exc is not None else value
                if on_done is not None:
                    on_done(index, None if exc is not None else value, exc)
    except BaseException:
        backend.abort(list(running))
        raise
    return results


class _Backend:
    def submit(self, fn: Callable[[Any], Any], job: Any) -> Any:
        raise NotImplementedError

    def wait(self, handles: list[Any]) -> list[Any]:
        """Block until at least one handle is finished; return the finished ones."""
        raise NotImplementedError

    def outcome(self, handle: Any) -> tuple[Any, BaseException | None]:
        raise NotImplementedError

    def abort(self, handles: list[Any]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


# --- thread -------------------------------------------------------------------------------------


class _ThreadBackend(_Backend):
    def __init__(self, workers: int) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="luban-job")
        self._aborted = False

    def submit(self, fn, job):
        return self._pool.submit(fn, job)

    def wait(self, handles):
        from concurrent.futures import FIRST_COMPLETED, wait

        return list(wait(handles, return_when=FIRST_COMPLETED).done)

    def outcome(self, handle):
        exc = handle.exception()
        return (None, exc) if exc is not None else (handle.result(), None)

    def abort(self, handles):
        self._aborted = True
        self._pool.shutdown(wait=False, cancel_futures=True)

    def close(self):
        # After an abort, don't block the KeyboardInterrupt on jobs that are still running.
        self._pool.shutdown(wait=not self._aborted, cancel_futures=self._aborted)


# --- process and ray: the job runs in another process ------------------------------------------


class _RemoteTraceback(Exception):
    """Attached as ``__cause__`` so the job's own traceback shows up when the exception is printed."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class _RemoteJobError(RuntimeError):
    """A job's exception that could not be rebuilt on this side (its class does not unpickle here)."""


@dataclass
class _Failure:
    type_name: str
    message: str
    traceback: str
    pickled: bytes | None

    def rebuild(self) -> BaseException:
        if self.pickled is not None:
            try:
                exc = pickle.loads(self.pickled)
            except Exception:
                exc = None
            if isinstance(exc, BaseException):
                exc.__cause__ = _RemoteTraceback(f"\n'''\n{self.traceback}'''")
                return exc
        return _RemoteJobError(f"{self.type_name}: {self.message}\n\nRemote traceback:\n{self.traceback}")


def _call(fn: Callable[[Any], Any], job: Any) -> Any:
    """Runs in the worker: the job's exception travels back as a `_Failure`, never as a crash."""
    try:
        return fn(job)
    except BaseException as exc:  # SystemExit/KeyboardInterrupt in a job fail that job only
        cls = type(exc)
        try:
            pickled: bytes | None = pickle.dumps(exc)
            pickle.loads(pickled)  # many exception classes pickle but don't unpickle (custom __init__)
        except Exception:
            pickled = None
        return _Failure(
            type_name=f"{cls.__module__}.{cls.__qualname__}",
            message=str(exc),
            traceback="".join(traceback.format_exception(exc)),
            pickled=pickled,
        )


def _result(value: Any) -> tuple[Any, BaseException | None]:
    return (None, value.rebuild()) if isinstance(value, _Failure) else (value, None)


# --- process ------------------------------------------------------------------------------------


def _init_worker(memory_limit_mb: int | None) -> None:
    if memory_limit_mb is not None:
        import resource

        limit = memory_limit_mb * 1024 * 1024
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)  # can't raise the hard limit; failing here would break the pool
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


@dataclass(eq=False)
class _ProcessJob:
    pool: Any
    future: Any
    process: Any  # the multiprocessing.Process running the job, for its exit code


class _ProcessBackend(_Backend):
    # One single-worker pool per job rather than one pool of `workers`: a worker that dies breaks
    # its whole ProcessPoolExecutor and fails every job in it, with no way to tell which one died.
    # A one-job pool pins the death on its own job and leaves the others running. Such a pool already
    # gives each job a fresh process, so max_tasks_per_child=1 is not passed: on CPython 3.11 it
    # makes the pool spawn a useless replacement worker after the job.

    def __init__(self, memory_limit_mb: int | None) -> None:
        import multiprocessing

        # spawn: fork would copy the caller's threads and memory into every worker
        self._context = multiprocessing.get_context("spawn")
        self._memory_limit_mb = memory_limit_mb

    def submit(self, fn, job):
        from concurrent.futures import ProcessPoolExecutor

        pool = ProcessPoolExecutor(
            1, mp_context=self._context, initializer=_init_worker, initargs=(self._memory_limit_mb,)
        )
        future = pool.submit(_call, fn, job)
        # submit() has spawned the pool's only process; private, but it is the only way to its exit code
        process = next(iter((getattr(pool, "_processes", None) or {}).values()), None)
        pool.shutdown(wait=False)  # no more jobs for this pool: its worker exits after this one
        return _ProcessJob(pool, future, process)

    def wait(self, handles):
        from concurrent.futures import FIRST_COMPLETED, wait

        by_future = {h.future: h for h in handles}
        return [by_future[f] for f in wait(by_future, return_when=FIRST_COMPLETED).done]

    def outcome(self, handle):
        from concurrent.futures.process import BrokenProcessPool

        exc = handle.future.exception()
        if isinstance(exc, BrokenProcessPool):
            return None, BrokenProcessPool(f"worker process died ({self._exit_status(handle.process)})")
        if exc is not None:  # e.g. the result could not be pickled
            return None, exc
        return _result(handle.future.result())

    @staticmethod
    def _exit_status(process: Any) -> str:
        import signal
        import time

        if process is None:
            return "exit status unknown"
        # The pool's manager thread may be reaping it at the same moment: give the status a moment.
        deadline = time.monotonic() + 5
        while process.exitcode is None and time.monotonic() < deadline:
            process.join(0.1)
        code = process.exitcode
        if code is None:
            return "exit status unknown"
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = str(-code)
            hint = ", maybe the out-of-memory killer" if -code == signal.SIGKILL else ""
            return f"killed by signal {name}{hint}"
        return f"exit code {code}"

    def abort(self, handles):
        for handle in handles:
            if handle.process is not None and handle.process.is_alive():
                handle.process.terminate()
            handle.pool.shutdown(wait=False, cancel_futures=True)

    def close(self):
        pass  # every pool was shut down at submit; its worker exits with its job


# --- ray ----------------------------------------------------------------------------------------


def _import_roots(*module_names: str) -> list[str]:
    """The sys.path entries that hold these modules' top-level packages, then the cwd."""
    roots: list[str] = []
    for name in module_names:
        module = sys.modules.get(name.partition(".")[0])
        if module is None:
            continue
        path = getattr(module, "__file__", None)
        if path is not None:
            root = os.path.dirname(os.path.abspath(path))
            if os.path.basename(path).startswith("__init__."):
                root = os.path.dirname(root)
        else:  # a namespace package
            locations = list(getattr(module, "__path__", []))
            if not locations:
                continue
            root = os.path.dirname(os.path.abspath(locations[0]))
        roots.append(root)
    roots.append(os.getcwd())
    return list(dict.fromkeys(roots))


def _check_reachable(address: str) -> None:
    # ray.init() on an address where nothing listens retries for about two minutes before failing;
    # a plain TCP connect answers in milliseconds. Only for host:port forms ("auto" is Ray's job).
    import socket

    host_port = address.split("://", 1)[1] if "://" in address else address
    host, sep, port = host_port.rstrip("/").rpartition(":")
    if not sep or not port.isdigit() or not host:
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
    except OSError as exc:
        raise ExecutorError(
            f"cannot reach a Ray cluster at {address!r} ({exc}); start one with `ray start --head` "
            "or fix --address"
        ) from exc


class _RayBackend(_Backend):
    def __init__(self, workers: int, address: str | None, fn: Callable[[Any], Any]) -> None:
        import logging

        try:
            import ray
        except ImportError as exc:
            raise ExecutorError("the ray executor needs Ray: pip install 'luban[ray]'") from exc
        self._ray = ray
        self._owned = False
        if address is None:
            address = os.environ.get("RAY_ADDRESS") or None  # Ray honours it too; then it is a cluster
        if not ray.is_initialized():  # a caller that already connected keeps its own Ray
            if address is not None:
                _check_reachable(address)
            # Workers import fn (and this module) by name: give them the driver's project paths.
            paths = _import_roots(__name__, getattr(fn, "__module__", "") or "")
            paths += [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
            runtime_env = {"env_vars": {"PYTHONPATH": os.pathsep.join(dict.fromkeys(paths))}}
            kwargs: dict[str, Any] = {"runtime_env": runtime_env}
            if address is None or "://" not in address:  # Ray Client forwards anything else to the server
                kwargs.update(
                    ignore_reinit_error=True,
                    include_dashboard=False,
                    log_to_driver=False,
                    logging_level=logging.WARNING,
                )
            if address is None:
                kwargs["num_cpus"] = workers
            try:
                ray.init(address=address, **kwargs)
            except Exception as exc:
                where = f"connect to the Ray cluster at {address!r}" if address else "start a local Ray"
                raise ExecutorError(f"cannot {where}: {exc}") from exc
            self._owned = True
        # One CPU per job so Ray never runs more jobs on a node than it has cores. max_calls=1: a fresh
        # worker process per job, as with the process executor, so an instance's memory and state
        # (cwd, caches) die with it; costs about a second of worker start-up per job.
        self._remote = ray.remote(num_cpus=1, max_calls=1)(_call)

    def submit(self, fn, job):
        return self._remote.remote(fn, job)

    def wait(self, handles):
        # A timeout keeps the loop responsive to Ctrl-C whatever Ray does with signals meanwhile.
        while True:
            ready, _ = self._ray.wait(handles, num_returns=1, timeout=1.0)
            if ready:
                return ready

    def outcome(self, handle):
        try:
            value = self._ray.get(handle)
        except Exception as exc:  # worker crashed, task cancelled, result not deserializable...
            return None, exc
        return _result(value)

    def abort(self, handles):
        for ref in handles:
            try:
                self._ray.cancel(ref, force=True)
            except Exception:
                pass  # already finished or the cluster is gone: nothing left to stop

    def close(self):
        if self._owned:
            self._ray.shutdown()
