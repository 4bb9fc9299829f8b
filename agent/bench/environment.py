"""Python environments for bench instances, built from the install specs (``specs.py``) without Docker.

Two layers, so the slow part is shared:

* a **base venv** per (repo, spec version, Python, dependencies, date pin), cached under the env cache
  and built once under a file lock (parallel workers wait for it). It holds what SWE-bench puts in its
  per-version environment image: the requirements file read at ``environment_setup_commit`` (with
  SWE-bench's replacements for yanked packages), conda-style ``packages`` (installed with pip), an
  ``environment.yml``'s pip-installable part, then ``pip_packages``.
* an **instance venv** (``--without-pip``, milliseconds to make) whose ``site-packages`` pulls the
  base in with ``site.addsitedir``; the spec's ``install`` (usually an editable install of the
  workspace) goes there. pip run from it sees the base's packages as installed, and refuses to
  uninstall them ("outside environment"), so one instance can never change another's base. The base's
  console scripts are copied into the instance venv with their ``#!`` pointing at its python, so
  ``pytest`` runs with the instance's packages.

**Python version:** the spec's (e.g. 3.9) from ``--python``, ``pythonX.Y`` on PATH or pyenv; when it
is not on the machine the current interpreter is used and the environment says so in its notes.

**Date pin:** unpinned dependencies would resolve to today's releases, which break old test suites
(click 8.2 dropped ``CliRunner(mix_stderr=)``, pytest 8 renamed parametrize ids...). pip >= 26 takes
``PIP_UPLOADED_PRIOR_TO``; it is set to the date of the instance's ``environment_setup_commit`` for
every pip call of the environment (base, install, the agent's own). Upload dates come from the index,
so pinned builds read PyPI (or ``PIP_INDEX_URL``) with the machine's pip config files set aside: local
wheel folders and file indexes carry no dates and would bypass the pin. ``date_pin=False`` turns it off.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from agent.bench.instances import Instance
from agent.bench.specs import Spec

MARKER = "luban-env.json"  # written last: a base without it is incomplete and gets rebuilt
ENV_FORMAT = 2  # bump when the build recipe changes, so old cached bases are not reused
_EXCLUDED_REQ_PREFIXES = ("-e .", "#", ".[test")  # as SWE-bench's get_requirements_by_commit


class EnvBuildError(RuntimeError):
    """An environment could not be built; the message names the step, the log file and its tail."""


@dataclass(frozen=True)
class EnvOptions:
    cache_dir: Path  # base venvs live here, one folder each
    python: str | None = None  # an interpreter to use for every instance, instead of the spec's version
    date_pin: bool = True
    timeout: float = 3600.0  # per install step


@dataclass(frozen=True)
class PythonChoice:
    path: str
    version: str  # "3.9.18"
    exact: bool  # major.minor is what the spec asked for
    note: str = ""


@dataclass
class BuiltEnv:
    venv: Path  # the instance venv
    base: Path
    python: PythonChoice
    cutoff: str = ""  # ISO date given to pip as PIP_UPLOADED_PRIOR_TO, "" if none
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)  # base (0 when cached), venv, install
    base_cached: bool = False

    def env_vars(self) -> dict[str, str]:
        """Variables that make a shell use this environment (put over os.environ)."""
        path = os.pathsep.join([str(self.venv / "bin"), str(self.base / "bin"), os.environ.get("PATH", "")])
        return {"PATH": path, "VIRTUAL_ENV": str(self.venv), **pip_env(self.cutoff)}

    def shell_setup(self) -> str:
        """The same as bash lines, for eval scripts."""
        lines = ["unset PYTHONHOME PYTHONPATH"]
        lines += [f"export {k}={shlex.quote(v)}" for k, v in self.env_vars().items()]
        return "\n".join(lines)


def pip_env(cutoff: str) -> dict[str, str]:
    if not cutoff:
        return {}
    # os.devnull as PIP_CONFIG_FILE makes pip skip every config file (pip's documented switch)
    return {"PIP_UPLOADED_PRIOR_TO": cutoff, "PIP_CONFIG_FILE": os.devnull}


# ---------------------------------------------------------------------------------------------- python


def _version_of(path: str) -> str | None:
    try:
        out = subprocess.run(
            [path, "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def _base_interpreter() -> str:
    # a venv's python makes venvs that chain to it; use the interpreter it was made from
    return getattr(sys, "_base_executable", None) or sys.executable


def _pyenv_candidates(want: str) -> list[str]:
    root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
    if not root.is_dir():
        return []
    found = []
    for d in root.iterdir():
        m = re.fullmatch(rf"{re.escape(want)}\.(\d+)", d.name)
        exe = d / "bin" / f"python{want}"
        if m and exe.is_file():
            found.append((int(m.group(1)), str(exe)))
    return [p for _, p in sorted(found, reverse=True)]


def find_python(want: str, override: str | None = None) -> PythonChoice:
    """An interpreter for Python ``want`` ("3.9"): ``override`` if given, else ``pythonX.Y`` on PATH,
    else pyenv's newest ``X.Y.*``, else the current interpreter (``exact=False`` with a note)."""
    if override:
        path = shutil.which(override) or override
        version = _version_of(path)
        if version is None:
            raise EnvBuildError(f"--python {override}: not a working Python interpreter")
        exact = not want or version.startswith(want + ".")
        note = "" if exact else f"the spec asks for Python {want}; using {version} from --python {override}"
        return PythonChoice(path, version, exact, note)
    want = (want or "").strip()
    if re.fullmatch(r"\d+\.\d+", want):
        current = f"{sys.version_info.major}.{sys.version_info.minor}"
        candidates = [_base_interpreter()] if want == current else []
        candidates += _pyenv_candidates(want)
        on_path = shutil.which(f"python{want}")
        if on_path:
            candidates.append(on_path)
        for path in candidates:
            version = _version_of(path)
            if version and version.startswith(want + "."):
                return PythonChoice(path, version, True)
    path = _base_interpreter()
    version = _version_of(path) or ".".join(map(str, sys.version_info[:3]))
    note = (
        f"the spec asks for Python {want}, which is not on this machine (pyenv install {want}, or "
        f"--python PATH); using {version}"
        if want and not version.startswith(want + ".")
        else ""
    )
    return PythonChoice(path, version, not note, note)


# ------------------------------------------------------------------------------------------ processes


def run_to_log(
    cmd: list[str] | str, *, cwd: Path, log: Path, env: dict[str, str] | None = None, timeout: float
) -> int | None:
    """Run ``cmd`` (a list, or a string for bash) with its output appended to ``log``: its exit code,
    None if it timed out. A timeout or Ctrl-C kills the whole process group. OSError if it cannot start."""
    argv = ["bash", "-c", cmd] if isinstance(cmd, str) else cmd
    full_env = {**os.environ, **(env or {})}
    full_env.pop("PYTHONHOME", None)
    full_env.pop("PYTHONPATH", None)
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        out.write(f"\n$ {cmd if isinstance(cmd, str) else ' '.join(cmd)}\n".encode())
        out.flush()
        proc = subprocess.Popen(
            argv, cwd=cwd, env=full_env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill(proc)
            return None
        except BaseException:
            _kill(proc)
            raise


def run_logged(
    cmd: list[str] | str,
    *,
    cwd: Path,
    log: Path,
    env: dict[str, str] | None = None,
    timeout: float,
    step: str,
) -> None:
    """``run_to_log`` for build steps: a failure or timeout raises EnvBuildError with the log's tail."""
    try:
        code = run_to_log(cmd, cwd=cwd, log=log, env=env, timeout=timeout)
    except OSError as e:
        raise EnvBuildError(f"{step}: cannot start {cmd if isinstance(cmd, str) else cmd[0]}: {e}") from None
    if code is None:
        raise EnvBuildError(f"{step}: did not finish within {timeout:.0f} s (log: {log})")
    if code != 0:
        raise EnvBuildError(f"{step} failed (exit code {code}); log: {log}\n{_tail(log)}")


def _kill(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _tail(log: Path, lines: int = 15) -> str:
    try:
        text = log.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join("    " + x for x in text.rstrip().splitlines()[-lines:])


def _git(ws: Path, *args: str) -> str | None:
    from tools.git.checkpoints import clean_git_env

    proc = subprocess.run(["git", *args], cwd=ws, capture_output=True, text=True, env=clean_git_env())
    return proc.stdout if proc.returncode == 0 else None


# ------------------------------------------------------------------------------------- dependencies


def _setup_commit(inst: Instance) -> str:
    return inst.environment_setup_commit or inst.base_commit


def commit_date(ws: Path, commit: str) -> str:
    """The committer date of ``commit`` as UTC ``YYYY-MM-DDTHH:MM:SSZ``, "" if unknown."""
    out = _git(ws, "show", "-s", "--format=%ct", commit)
    if not out or not out.strip().isdigit():
        return ""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(out.strip())))


def requirements_text(ws: Path, inst: Instance, spec: Spec) -> str:
    """The requirements file of the spec, read at ``environment_setup_commit`` from the workspace's
    object store, ``-r`` includes inlined, cleaned as SWE-bench does."""
    commit = _setup_commit(inst)
    for path in spec.reqs_paths:
        text = _git(ws, "show", f"{commit}:{path}")
        if text is None:
            continue
        req_dir = path.rsplit("/", 1)[0] if "/" in path else ""
        included: list[str] = []
        own: list[str] = []
        for line in text.splitlines():
            if line.strip().startswith("-r"):
                name = line.strip()[2:].strip()
                sub = _git(ws, "show", f"{commit}:{f'{req_dir}/{name}' if req_dir else name}")
                if sub is not None:
                    included += [
                        x for x in sub.splitlines() if not x.strip().startswith(_EXCLUDED_REQ_PREFIXES)
                    ]
            elif not line.strip().startswith(_EXCLUDED_REQ_PREFIXES):
                own.append(line)
        return clean_requirements("\n".join([*included, "\n".join(own)]), spec.replace_requirements)
    tried = ", ".join(spec.reqs_paths) or "(no requirements path known for this repo)"
    raise EnvBuildError(
        f"{inst.instance_id}: the spec installs requirements.txt but none of {tried} exists at {commit[:12]}; "
        "add reqs_paths for the repo with --specs"
    )


def clean_requirements(text: str, replacements) -> str:
    for old, new in replacements:
        pattern = rf"^{re.escape(old)}([<>=!~]=?.*|$)"
        text = (
            re.sub(pattern + r"\n?", "", text, flags=re.M)
            if new is None
            else re.sub(pattern, new, text, flags=re.M)
        )
    return text


def conda_to_pip(packages: str) -> list[str]:
    """Conda-style specs (``numpy scipy=1.2 python=3.9``) as pip requirements; python is dropped."""
    out = []
    for token in packages.split():
        name = re.split(r"[<>=!~ ]", token, maxsplit=1)[0]
        if name.lower() in ("python", "pip") or not name:
            continue
        token = re.sub(r"(?<![<>=!~])=(?!=)", "==", token)  # conda's single "=" pin
        out.append(token)
    return out


def environment_yml_requirements(ws: Path, inst: Instance, spec: Spec) -> list[str]:
    """The pip-installable requirements of the repo's environment.yml (conda and pip sections)."""
    import yaml

    commit = _setup_commit(inst)
    for path in spec.env_yml_paths or ("environment.yml",):
        text = _git(ws, "show", f"{commit}:{path}")
        if text is None:
            continue
        data = yaml.safe_load(text) or {}
        reqs: list[str] = []
        for dep in data.get("dependencies") or []:
            if isinstance(dep, dict):
                reqs += [str(x) for x in dep.get("pip") or []]
            else:
                reqs += conda_to_pip(str(dep))
        return reqs, []
    raise EnvBuildError(
        f"{inst.instance_id}: the spec uses environment.yml but none was found at {commit[:12]}"
    )


# ------------------------------------------------------------------------------------------ building


def _site_packages(venv: Path) -> Path:
    found = sorted((venv / "lib").glob("python*/site-packages"))
    if not found:
        raise EnvBuildError(f"{venv}: no lib/pythonX.Y/site-packages (not a venv?)")
    return found[0]


@contextlib.contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _dependencies(ws: Path, inst: Instance, spec: Spec) -> tuple[str, list[str], list[str]]:
    """(requirements file text, packages from the spec's ``packages``, notes)."""
    notes: list[str] = []
    packages = spec.packages.strip()
    if packages == "requirements.txt":
        return requirements_text(ws, inst, spec), [], notes
    if packages == "environment.yml":
        reqs = environment_yml_requirements(ws, inst, spec)
        notes.append("environment.yml installed with pip (no conda here): conda-only packages may be missing")
        return "\n".join(reqs), [], notes
    return "", conda_to_pip(packages), notes


def base_env(
    ws: Path, inst: Instance, spec: Spec, opts: EnvOptions
) -> tuple[Path, PythonChoice, str, bool, list[str]]:
    """The cached base venv for the instance, built if missing: (path, python, cutoff, cached, notes)."""
    python = find_python(spec.python, opts.python)
    requirements, packages, notes = _dependencies(ws, inst, spec)
    cutoff = commit_date(ws, _setup_commit(inst)) if opts.date_pin else ""
    pip_packages = list(spec.pip_packages) or (["pytest"] if spec.source == "default" else [])
    material = {
        "format": ENV_FORMAT,
        "repo": inst.repo,
        "spec_version": spec.spec_version or spec.version,
        "python": python.version,
        "python_path": python.path,
        "requirements": requirements,
        "packages": packages,
        "pip_packages": pip_packages,
        "cutoff": cutoff,
    }
    digest = hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()[:12]
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{inst.repo.replace('/', '__')}-{material['spec_version']}")
    base = Path(opts.cache_dir).expanduser().resolve() / f"{slug}-py{python.version}-{digest}"
    notes = [python.note, *notes] if python.note else notes
    with _locked(base.parent / (base.name + ".lock")):
        if (base / MARKER).is_file():
            return base, python, cutoff, True, notes
        shutil.rmtree(base, ignore_errors=True)  # an earlier build that did not finish
        base.mkdir(parents=True)
        log = base / "build.log"
        env = pip_env(cutoff)
        t0 = time.monotonic()
        step = f"{inst.repo} {material['spec_version']}: "
        run_logged(
            [python.path, "-m", "venv", str(base)],
            cwd=base,
            log=log,
            timeout=opts.timeout,
            step=step + "venv",
        )
        py = str(base / "bin" / "python")
        # a pip that knows --uploaded-prior-to; not itself pinned, and not fatal (offline, old Pythons)
        with contextlib.suppress(EnvBuildError):
            run_logged([py, "-m", "pip", "install", "-q", "-U", "pip"], cwd=base, log=log, timeout=opts.timeout,
                       step=step + "pip upgrade")  # fmt: skip
        pip = [py, "-m", "pip", "install", "-q"]

        def install(args: list[str], what: str, pinned: bool) -> None:
            try:
                run_logged([*pip, *args], cwd=ws, log=log, env=env if pinned else {}, timeout=opts.timeout,
                           step=step + what)  # fmt: skip
            except EnvBuildError:
                if not (pinned and env):
                    raise
                # an exact pin newer than the cutoff (SWE-bench pins some later releases): unpinned retry
                # that keeps what is installed, so one late package does not pull today's everything
                notes.append(f"{what}: not installable as of {cutoff}; installed without the date pin")
                frozen = base / "luban-installed.txt"
                with open(frozen, "w") as f:
                    subprocess.run(
                        [py, "-m", "pip", "freeze"], stdout=f, stderr=subprocess.DEVNULL, check=False
                    )
                try:
                    run_logged([*pip, "-c", str(frozen), *args], cwd=ws, log=log, timeout=opts.timeout,
                               step=step + what)  # fmt: skip
                except EnvBuildError:
                    run_logged([*pip, *args], cwd=ws, log=log, timeout=opts.timeout, step=step + what)

        if requirements.strip():
            (base / "requirements.txt").write_text(requirements + "\n", encoding="utf-8")
            install(["-r", str(base / "requirements.txt")], "requirements", pinned=True)
        if packages:
            install(packages, "packages", pinned=True)
        if pip_packages:
            # SWE-bench's exact pins were chosen by hand, sometimes newer than the cutoff: taken as given
            exact = all("==" in p for p in pip_packages)
            install(pip_packages, "pip_packages", pinned=not exact)
        info = {**material, "seconds": round(time.monotonic() - t0, 2), "notes": notes}
        (base / MARKER).write_text(json.dumps(info, indent=1) + "\n", encoding="utf-8")
    return base, python, cutoff, False, notes


def _overlay(base: Path, venv: Path, python: PythonChoice) -> None:
    """An empty venv that sees the base's packages after its own, with the base's scripts re-pointed."""
    if venv.exists():
        shutil.rmtree(venv)
    subprocess.run([python.path, "-m", "venv", "--without-pip", str(venv)], check=True, capture_output=True)
    base_site = _site_packages(base)
    # addsitedir (not a plain path line) so the base's own .pth files (namespace packages...) work too;
    # not inside pip's isolated build environments, whose clean-up cannot see paths added this way
    (_site_packages(venv) / "_luban_base.pth").write_text(
        "import os, site; 'pip-build-env' in os.environ.get('PYTHONPATH', '') or "
        f"site.addsitedir({str(base_site)!r})\n"
    )
    own_python = str(venv / "bin" / "python")
    base_bin = base / "bin"
    for script in base_bin.iterdir():
        target = venv / "bin" / script.name
        if target.exists() or not script.is_file():
            continue
        try:
            with open(script, "rb") as f:
                first = f.readline(1024)  # a compiled program in bin/ is never read whole
                if not first.startswith(b"#!") or str(base_bin).encode() not in first:
                    continue
                rest = f.read()
        except OSError:
            continue
        target.write_bytes(b"#!" + own_python.encode() + b"\n" + rest)
        target.chmod(0o755)


def prepare_env(
    ws: Path, inst: Instance, spec: Spec, venv: Path, opts: EnvOptions, *, install: bool = True
) -> BuiltEnv:
    """The instance's environment at ``venv``: the shared base, then (if ``install``) the spec's
    ``pre_install`` and ``install`` commands run in the workspace with it active. Build output goes to
    ``venv/../<venv name>.log``; failures raise EnvBuildError."""
    venv = Path(venv).resolve()
    t0 = time.monotonic()
    base, python, cutoff, cached, notes = base_env(ws, inst, spec, opts)
    t1 = time.monotonic()
    _overlay(base, venv, python)
    built = BuiltEnv(
        venv=venv, base=base, python=python, cutoff=cutoff, notes=list(notes), base_cached=cached
    )
    t2 = time.monotonic()
    if install:
        run_install(built, ws, spec, log=venv.with_name(venv.name + ".log"), timeout=opts.timeout)
    built.timings = {
        "base": round(t1 - t0, 3),
        "venv": round(t2 - t1, 3),
        "install": round(time.monotonic() - t2, 3),
    }
    return built


def install_commands(spec: Spec) -> list[str]:
    """pre_install then install; system package managers are skipped (never touch the host)."""
    cmds = [c for c in spec.pre_install if not re.match(r"^\s*(sudo\s+)?(apt|apt-get|yum|dnf|apk)\b", c)]
    if spec.install:
        cmds.append(spec.install)
    return cmds


def unpinned_retry(cmd: str) -> str:
    """``cmd`` as bash with two fallbacks for installs that fail:

    1. under the date pin: again without it, keeping every installed version (a constraints file from
       ``pip freeze``). The pin also reaches pip's isolated build environments, where an old project's
       date-pinned setuptools has no PEP 660 editable hook;
    2. with pip < 25.3 in the instance venv: old projects pin a setuptools without that hook in their
       own build-system table, and pip 25.3 dropped the ``setup.py develop`` fallback they need.
    """
    unpin = "env -u PIP_UPLOADED_PRIOR_TO -u PIP_CONFIG_FILE"
    frozen = '"$VIRTUAL_ENV/luban-installed.txt"'
    quoted = shlex.quote(cmd)
    return (
        f'{{ {cmd}\n}} || {{ [ -n "${{PIP_UPLOADED_PRIOR_TO:-}}" ] '
        "&& echo 'luban: install failed under the date pin; retrying without it, installed versions kept' >&2 "
        f"&& python -m pip freeze --exclude-editable > {frozen} "
        f"&& {unpin} PIP_CONSTRAINT={frozen} bash -c {quoted}; }} "
        "|| { echo 'luban: install failed; retrying with pip<25.3 (setup.py develop for old setuptools)' >&2 "
        f"&& {unpin} python -m pip install -q 'pip<25.3' && {unpin} bash -c {quoted}; }}"
    )


def run_install(built: BuiltEnv, ws: Path, spec: Spec, *, log: Path, timeout: float) -> None:
    if not installs_project(spec, ws):
        built.notes.append(
            "no packaging metadata (pyproject.toml, setup.py, setup.cfg): project not installed"
        )
        return
    commands = install_commands(spec)
    skipped = [c for c in spec.pre_install if c not in commands]
    if skipped:
        built.notes.append(f"skipped system package steps: {'; '.join(skipped)}")
    for cmd in commands:
        run_logged(unpinned_retry(cmd), cwd=ws, log=log, env=built.env_vars(), timeout=timeout,
                   step=f"{spec.repo}: {cmd}")  # fmt: skip


def installs_project(spec: Spec, ws: Path) -> bool:
    """Whether the spec's install runs: always for a known repo; for the default spec only when the
    workspace has packaging metadata to install from."""
    return spec.source != "default" or any(
        (ws / f).is_file() for f in ("pyproject.toml", "setup.py", "setup.cfg")
    )


def describe(built: BuiltEnv) -> dict:
    d = asdict(built)
    d["venv"], d["base"] = str(built.venv), str(built.base)
    return d
