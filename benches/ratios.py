#!/usr/bin/env python3
"""Prints the criterion results of `cargo bench --bench hot_paths` as multiples of the
baseline measured in the same run (SHA-256 of one access token), so figures from shared,
noisy machines can be compared."""
import json
import pathlib
import sys

root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "target/criterion")
results = {}
for estimates in root.glob("**/new/estimates.json"):
    bench = json.loads((estimates.parent / "benchmark.json").read_text())
    results[bench["full_id"]] = json.loads(estimates.read_text())["median"]["point_estimate"]
base = results.get("baseline/sha256_token")
if not base:
    sys.exit("no baseline/sha256_token result: run `cargo bench --bench hot_paths` first")
print(f"{'benchmark':<32} {'median':>12} {'x baseline':>11}")
for name, ns in sorted(results.items()):
    time = f"{ns / 1000:.2f} us" if ns >= 1000 else f"{ns:.0f} ns"
    print(f"{name:<32} {time:>12} {ns / base:>11.1f}")
