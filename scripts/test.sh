#!/usr/bin/env bash
# Everything CI checks, stage by stage, with each stage's time printed against its budget in
# docs/development.md. Stops at the first failing stage. Timings are reported, never asserted.
set -euo pipefail
cd "$(dirname "$0")/.."

SWIFT=${SWIFT:-swift}
stage_names=()
stage_seconds=()
run_stage() {
  local name=$1 budget_minutes=$2; shift 2
  echo "::: stage: $name (budget ${budget_minutes} min)"
  local started=$SECONDS
  "$@"
  local took=$((SECONDS - started))
  stage_names+=("$name")
  stage_seconds+=("$took")
  echo "::: stage: $name done in ${took}s"
  if [ "$took" -gt $((budget_minutes * 60)) ]; then
    echo "::: warning: stage '$name' took ${took}s, over its ${budget_minutes}-minute budget (docs/development.md)"
  fi
}

KEEL=.build/release/keel

run_stage "dependency and debug build" 4 $SWIFT build --build-tests
# The wire fuzz test runs its full 10⁶ frames here (its debug default is 5·10⁵ for quick local runs).
run_stage "debug tests" 3 env KEEL_WIRE_FUZZ_ITERATIONS=1000000 $SWIFT test --skip-build --skip KeelNodeTests
# Real keel node processes on loopback, in a run of their own so their long waits do not share the
# test runner's threads with the rest.
run_stage "process tests" 3 $SWIFT test --skip-build --filter KeelNodeTests
run_stage "release build" 4 $SWIFT build -c release --product keel
simulate_all() {
  # A time box per member count and durability mode, each with a floor of 2,000 seeds of >= 2,000 steps.
  for members in 3 5; do
    for mode in durable replicated; do
      $KEEL sim --members "$members" --mode "$mode" --seeds 2000 --steps 2000 --seconds 15
    done
  done
}

simulate_nodes() {
  # Three whole nodes (both agents, log on simulated disks, simulated network and clock, a client) with
  # crashes, power losses and network faults: a time box per durability mode, floor of 500 seeds.
  for mode in durable replicated; do
    $KEEL sim --node --mode "$mode" --seeds 500 --seconds 30
    # Heavy load: AppendEntries cut inside frames, large batches, long catch-ups.
    $KEEL sim --node --mode "$mode" --seed 1000000 --seeds 100 --requests 1500
    # Snapshots: markers every 32-256 KiB, crashes and power losses inside snapshot writing, restarts from them.
    $KEEL sim --node --mode "$mode" --seed 2000000 --seeds 200 --snapshots
    # Compaction: 192 KiB segments, 128-256 KiB slack, crashes and power losses right after log-start
    # moves; members that fall behind the leader's log start are sent its snapshot.
    $KEEL sim --node --mode "$mode" --seed 1 --seeds 12 --requests 300 --snapshots --compaction-slack-kib 256
  done
}

example_package() {
  # The example a new user copies (docs/writing-a-service.md): its own package depending on Keel by
  # path, its own main; try-it runs a 3-member cluster in-process on loopback and a client against it.
  $SWIFT build --package-path Examples/LeaseLocks --scratch-path "$PWD/.build-examples"
  .build-examples/debug/LeaseLocks try-it
}

run_stage "Examples/ package build and run" 1 example_package
run_stage "raft simulation time boxes" 2 simulate_all
run_stage "whole-node simulation time boxes" 4 simulate_nodes
benchmark_smoke() {
  $KEEL bench io --quick
  # 64 MiB written and loaded through the snapshot archive beside raw write and read (a few seconds).
  $KEEL bench snapshot --quick
  # One kv node: 20,000 keys, a snapshot, 8 MiB of log after it, a cold restart timed to ready (~10 s).
  $KEEL bench restart --quick
}
run_stage "io and snapshot benchmark smoke runs" 1 benchmark_smoke
run_stage "Benchmarks/ package compile check" 2 $SWIFT build --package-path Benchmarks --scratch-path .build-benchmarks

echo "::: summary"
total=0
for i in "${!stage_names[@]}"; do
  printf '  %-40s %5ss\n' "${stage_names[$i]}" "${stage_seconds[$i]}"
  total=$((total + stage_seconds[$i]))
done
printf '  %-40s %5ss (budget 25 min)\n' "total" "$total"
