#!/usr/bin/env bash
# The cost of the message log and of its fsync policy: the same two measurements against a
# server with --no-history, --fsync normal (default) and --fsync full, twice each, interleaved.
# Loopback only; every server is stopped by its PID. Takes about a minute.
set -euo pipefail
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export CHATKIT_HOME="$work/home"
for round in 1 2; do
  for policy in none normal full; do
    if [ "$policy" = none ]; then extra=(--no-history); else extra=(--fsync "$policy" --db "$work/$policy-$round.db"); fi
    chatkit serve --host 127.0.0.1 --port 0 --no-discovery --rate-limit 0 --max-per-address 0 \
      "${extra[@]}" > "$work/serve.out" 2> "$work/serve.err" &
    pid=$!
    for _ in $(seq 50); do grep -q listening "$work/serve.out" && break; sleep 0.1; done
    port=$(head -1 "$work/serve.out" | grep -o '[0-9]*$')
    max=$(chatkit bench "127.0.0.1:$port" --clients 10 --senders 10 --max --duration 5 --no-tls --json |
      python3 -c "import json,sys; d=json.load(sys.stdin); print(f\"{d['messages_per_s']:.0f} msg/s ok={d['ok']}\")")
    human=$(chatkit bench "127.0.0.1:$port" --clients 100 --senders 10 --rate 200 --duration 5 --no-tls --json |
      python3 -c "import json,sys; d=json.load(sys.stdin); l=d['latency_ms']; print(f\"p50 {l['p50']:.2f} p99 {l['p99']:.2f} max {l['max']:.2f} ms\")")
    echo "round $round, log $policy: 10 clients x 10 senders max: $max | 100 clients, 200 msg/s: $human"
    kill "$pid"; wait "$pid" || true
  done
done
