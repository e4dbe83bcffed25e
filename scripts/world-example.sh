#!/usr/bin/env bash
# The README's worked example of a shared world, run for real: lore, a game event, gossip
# reaching a second character, and that character's reply mentioning it. Starts the
# service binary (BINARY, default target/debug/npc-dialogue, built first) over a
# fresh database on MariaDB at 127.0.0.1:3306 (root, no password), with a small
# OpenAI-compatible provider that repeats what the prompt's notes hand the character
# (scripts/echo_provider.py) and GOSSIP_DELAY_S=2. Prints each call and its answer;
# exits non-zero when the second character's reply does not mention the fire.
# Everything it started is stopped, and the database dropped, on exit.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)

if [ -z "${BINARY:-}" ]; then
    cargo build --locked --bin npc-dialogue   # a no-op when it is up to date
fi
binary=${BINARY:-$root/target/debug/npc-dialogue}
client=$(command -v mariadb || command -v mysql)
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port=$(free_port)
provider_port=$(free_port)
database=npc_world_example_$$
key=example-key
base=http://127.0.0.1:$port
work=$(mktemp -d)
pids=()

cleanup() {
    status=$?
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    "$client" --host=127.0.0.1 --port=3306 --user=root \
        -e "DROP DATABASE IF EXISTS \`$database\`" || true
    if [ "$status" -ne 0 ] && [ -f "$work/service.log" ]; then
        echo "--- the service's log (last 30 lines)"
        tail -n 30 "$work/service.log"
    fi
    rm -rf "$work"
    exit "$status"
}
trap cleanup EXIT INT TERM

python3 "$root/scripts/echo_provider.py" "$provider_port" &
pids+=($!)
(
    cd "$work"
    exec env -i PATH="$PATH" \
        DATABASE_URL="mysql://root@127.0.0.1:3306/$database" \
        BIND_ADDR="127.0.0.1:$port" \
        GAME_API_KEYS="$key" \
        LLM_BASE_URL="http://127.0.0.1:$provider_port/v1" LLM_API_KEY=echo \
        GOSSIP_DELAY_S=2 LOG_FORMAT=json RUST_LOG=warn \
        "$binary"
) >"$work/service.log" 2>&1 &
pids+=($!)
for _ in $(seq 120); do
    curl -fsS "$base/healthz" >/dev/null 2>&1 && break
    sleep 0.5
done

# call METHOD PATH [BODY]: prints the call and the answer (status and JSON).
call() {
    local method=$1 path=$2 body=${3:-}
    echo "\$ curl -X $method $path${body:+ -d '$body'}"
    local args=(-sS -X "$method" -H "Authorization: Bearer $key" -w '\n%{http_code}')
    [ -n "$body" ] && args+=(-H 'Content-Type: application/json' -d "$body")
    local answer
    answer=$(curl "${args[@]}" "$base$path")
    echo "→ ${answer##*$'\n'} ${answer%$'\n'*}"
    echo
    last=${answer%$'\n'*}
}

echo "## Two guards of the watch, and world lore that needs a flag"
call PUT /characters/bram '{"name": "Bram", "persona": "A guard of the town watch.", "factions": ["watch"]}'
call PUT /characters/aldo '{"name": "Aldo", "persona": "A guard of the town watch, fond of rumours.", "factions": ["watch"]}'
call PUT /lore/mill '{"text": "The old mill feeds half the town.", "scope": "world", "tags": ["mill"], "requires_flags": ["reached_town"]}'
echo "## What Aldo would know in a turn, with and without the flag"
call GET "/characters/aldo/knowledge?player_id=p-7"
call GET "/characters/aldo/knowledge?player_id=p-7&flags=reached_town"
echo "## The game reports an event: Bram saw the player set fire to the mill"
call POST /events '{"client_event_id": "fire-1", "text": "The player set fire to the mill.", "importance": 9, "player_id": "p-7", "witnesses": ["bram"]}'
call GET "/memory?character_id=bram&player_id=p-7"
echo "## GOSSIP_DELAY_S later, Aldo has heard it from Bram (importance 9 × 0.7, floored)"
for _ in $(seq 40); do
    sleep 0.25
    curl -fsS -H "Authorization: Bearer $key" "$base/memory?character_id=aldo&player_id=p-7" \
        | grep -q '"gossip"' && break
done
call GET "/memory?character_id=aldo&player_id=p-7"
echo "## The player talks to Aldo: the prompt tells him what Bram said, and he mentions it"
call POST /conversations/c-aldo/messages '{"player_id": "p-7", "character_id": "aldo", "content": "Evening, guard.", "flags": ["reached_town"]}'
grep -q "Bram said that the player set fire to the mill" <<<"$last" || {
    echo "error: Aldo's reply does not mention what Bram said" >&2
    exit 1
}
echo "worked example: OK"
