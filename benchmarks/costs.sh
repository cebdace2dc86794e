#!/usr/bin/env bash
# What the message log (and its fsync policy) and TLS cost: the same measurements against
# servers in each configuration, interleaved, in rounds. Server CPU is read from /proc.
# Loopback only; every server is stopped by its PID. Takes about three minutes.
# Usage: benchmarks/costs.sh [ROUNDS]   (default 2)
set -euo pipefail
rounds=${1:-2}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export CHATKIT_HOME="$work/home"

# run NAME SERVE_ARGS... -- BENCH_ARGS...: one server, two measurements
run() {
  local name=$1; shift
  local serve_args=() bench_args=()
  while [ "$1" != -- ]; do serve_args+=("$1"); shift; done; shift
  bench_args=("$@")
  chatkit serve --host 127.0.0.1 --port 0 --no-discovery --rate-limit 0 --max-per-address 0 \
    "${serve_args[@]}" > "$work/serve.out" 2> "$work/serve.err" &
  local pid=$!
  for _ in $(seq 50); do grep -q listening "$work/serve.out" && break; sleep 0.1; done
  local port; port=$(head -1 "$work/serve.out" | grep -o '[0-9]*$')
  local cpu0; cpu0=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  local max; max=$(chatkit bench "127.0.0.1:$port" --clients "$clients" --senders 10 --max \
      --duration 5 "${bench_args[@]}" --json)
  local cpu1; cpu1=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  local human; human=$(chatkit bench "127.0.0.1:$port" --clients 100 --senders 10 --rate 200 \
      --duration 5 "${bench_args[@]}" --json)
  python3 - "$name" "$max" "$human" "$cpu0" "$cpu1" "$(getconf CLK_TCK)" <<'PY'
import json, sys
name, fast, slow, cpu0, cpu1, tick = sys.argv[1:]
fast, slow = json.loads(fast), json.loads(slow)
server_us = (float(cpu1) - float(cpu0)) / float(tick) / fast["deliveries"] * 1e6
lat = slow["latency_ms"]
print(f"{name:<14} max: {fast['messages_per_s']:>8.0f} msg/s {fast['deliveries_per_s']:>9.0f}"
      f" deliveries/s, server {server_us:.3f} us/delivery, generator"
      f" {fast['generator_cpu_util']:.2f} cores (busiest process"
      f" {fast['generator_cpu_util_max']:.0%}), ok={fast['ok']} | 100 clients at 200 msg/s:"
      f" p50 {lat['p50']:.2f} p99 {lat['p99']:.2f} max {lat['max']:.2f} ms, ok={slow['ok']}")
PY
  kill "$pid"; wait "$pid" || true
}

echo "== message log, 10 clients x 10 senders (the server, not the generator, is the limit)"
clients=10
for round in $(seq "$rounds"); do
  run "log off" --no-history -- --no-tls
  run "fsync normal" --fsync normal --db "$work/normal-$round.db" -- --no-tls
  run "fsync full" --fsync full --db "$work/full-$round.db" -- --no-tls
done
echo "== TLS, 100 clients x 10 senders"
clients=100
for round in $(seq "$rounds"); do
  run "plain" -- --no-tls
  run "TLS" -- --tls
done
