#!/usr/bin/env bash
# Runs the seeds' graph as four processes on a local NATS server: the source, two processes
# sharing `rev`, and the sink; then prints each process's run report.
#   examples/distributed/run.sh [words] [rev work per word in ms]
set -euo pipefail
cd "$(dirname "$0")/../.."

words=${1:-1000}
work_ms=${2:-1}
command -v nats-server >/dev/null || {
    echo "nats-server is not installed: apt-get install nats-server (or see https://nats.io)" >&2
    exit 1
}
cargo build --quiet --example distributed --features nats
# Wherever cargo puts its builds (CARGO_TARGET_DIR, a config file, or ./target).
target_dir=$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
bin="$target_dir/debug/examples/distributed"

dir=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
nats-server -js -a 127.0.0.1 -p "$port" -sd "$dir/store" >"$dir/nats.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; rm -rf "$dir"' EXIT
until (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do sleep 0.1; done

export PIPELINE_NATS_URL="nats://127.0.0.1:$port" PIPELINE_RUN="demo$$" WORDS="$words" REV_WORK_MS="$work_ms"
PIPELINE_NODES=rev PIPELINE_INSTANCE=rev-1 "$bin" 2>"$dir/rev-1.txt" &
rev1=$!
PIPELINE_NODES=rev PIPELINE_INSTANCE=rev-2 "$bin" 2>"$dir/rev-2.txt" &
rev2=$!
PIPELINE_NODES=out PIPELINE_REPLICAS=rev=2 "$bin" >"$dir/pairs.txt" 2>"$dir/out.txt" &
out=$!
PIPELINE_NODES=inp "$bin" 2>"$dir/inp.txt"
wait $rev1 $rev2 $out

for process in inp rev-1 rev-2 out; do
    echo "== $process"
    cat "$dir/$process.txt"
done
echo "== $(wc -l <"$dir/pairs.txt") pairs reached the sink, e.g.:"
head -3 "$dir/pairs.txt"
