#!/usr/bin/env python3
"""Pingora's own settings that matter for a proxy's load, measured on credgate, in one run.

    bash benches/e2e/setup.sh            # once: wrk, nginx (and oha for the fixed-rate part)
    python3 benches/e2e/settings.py      # 3 interleaved rounds of 8 s per row: about 5 minutes
    python3 benches/e2e/settings.py --fixed-rate-only

One credgate instance per setting, all in front of the same nginx upstream, each measured on
its public route and its protected route (one token, validation cache hits) with the same wrk
settings as run.py (2 threads, 32 keep-alive connections); a row's figures are its median
round. The rows change one setting from the defaults at a time:
  - server.threads: worker threads of the main listener (default: the number of cores);
  - server.work_stealing: whether an idle worker takes tasks queued on a busy one;
  - server.upstream_keepalive_pool: idle upstream connections kept for reuse; 8 is fewer than
    the 32 client connections, so requests open new upstream connections.
Then, if `oha` is on PATH (setup.sh builds it into .tools/bin), the fixed-rate part: what auth
adds to a request's p99 when the gateway is not saturated. On two shared cores a load
generator, an upstream and a gateway all unpinned make a p99 that moves by a millisecond
between runs, so here a one-thread credgate gets the last core to itself and oha and nginx
share the first (taskset): its protected peak is measured first (wrk, pinned with them), then
half that rate is sent, with latency correction (no coordinated omission), to the public and
the protected route at once, a quarter to each from two oha processes: both routes see the
same moments of the shared machine, so what the host does to one round it does to both. Both
are sent the same `Authorization` header (the public route never reads it), so the load
generator writes the same bytes for both and the difference is the check alone. The median of
the per-round p99 differences is the figure, measured twice: by oha (what the client sees,
the load generator's own queueing included) and by credgate's request log (`latency_ms`,
from the request's head to its logging, on the core credgate has to itself), which leaves the
load generator out.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import (  # noqa: E402
    BIN, Processes, basic, build_release, checked, credgate_config, median, mint_tokens,
    new_secret, nginx_config, free_port, wrk,
)

CORES = os.cpu_count() or 2
SETTINGS = [
    ("defaults", ""),
    ("threads = 1", "threads = 1"),
    (f"threads = {CORES * 2}", f"threads = {CORES * 2}"),
    ("work_stealing = false", "work_stealing = false"),
    ("upstream_keepalive_pool = 8", "upstream_keepalive_pool = 8"),
]
TOOLS_BIN = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), ".tools", "bin")


def pinned(cpu, argv):
    """`argv` run on CPU `cpu` only."""
    return ["taskset", "-c", str(cpu)] + argv


def oha(url, rate, seconds, token):
    """A started oha sending `rate` requests/s to `url` for `seconds`, latency-corrected, with
    `token` as its bearer; it runs on the first CPU. `oha_result` reads what it found."""
    argv = pinned(0, ["oha", "--no-tui", "--output-format", "json", "-z", f"{seconds}s",
                      "-c", "16", "-q", str(rate), "--latency-correction",
                      "-H", f"Authorization: Bearer {token}", url])
    return subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)


def oha_result(run):
    """p50 and p99 in ms of a finished `oha` run, and its rate; every answer must be a 200."""
    out, _ = run.communicate()
    assert run.returncode == 0, f"oha failed ({run.returncode})"
    report = json.loads(out)
    codes = report.get("statusCodeDistribution", {})
    assert set(codes) <= {"200"}, f"non-200 answers: {codes}"
    percentiles = report["latencyPercentiles"]
    return {"p50": percentiles["p50"] * 1e3, "p99": percentiles["p99"] * 1e3,
            "rps": report["summary"]["requestsPerSec"]}


def main(seconds=8, rounds=3, settings=True):
    build_release()
    home = tempfile.mkdtemp(prefix="credgate-settings-")
    procs = Processes(home)
    try:
        return measure(home, procs, seconds, rounds, settings)
    finally:
        procs.stop()
        print(f"logs: {home}")


def measure(home, procs, seconds, rounds, settings):
    secret, hash_ = new_secret()
    with open(os.path.join(home, "clients.toml"), "w") as f:
        f.write('[[client]]\nid = "bench"\nname = "Bench"\nscopes = ["api.read"]\n'
                f'token_lifetime = "1h"\n\n[[client.secret]]\nhash = "{hash_}"\n')
    nginx = free_port()
    conf = nginx_config(home, "nginx", nginx, 1, 'return 200 "hello from the upstream\\n";')
    procs.start("nginx", ["nginx", "-p", home, "-c", conf], nginx)
    ports = {}
    for i, (name, server) in enumerate(SETTINGS):
        config, port = credgate_config(home, f"credgate-{i}", nginx, extra_server=server)
        procs.start(f"credgate-{i}", [BIN, "--config", config, "serve"], port)
        ports[name] = port
    token = mint_tokens(ports["defaults"], basic("bench", secret), 4)[0]
    token_file = os.path.join(home, "token.txt")
    with open(token_file, "w") as f:
        f.write(token + "\n")

    results = {(name, kind): [] for name, _ in SETTINGS for kind in ("public", "protected")}
    for round_ in range(1, rounds + 1 if settings else 0):
        print(f"--- round {round_}/{rounds}", flush=True)
        for name, _ in SETTINGS:
            port = ports[name]
            results[(name, "public")].append(checked(
                name, "public", wrk(f"http://127.0.0.1:{port}/open/x", seconds)))
            results[(name, "protected")].append(checked(
                name, "protected", wrk(f"http://127.0.0.1:{port}/api/x", seconds, "bearer.lua",
                                       {"TOKENS": token_file})))
    if settings:
        settings_table(results)
    if not shutil.which("oha", path=f"{TOOLS_BIN}:{os.environ.get('PATH', '')}"):
        print("\nfixed rate: skipped (oha is not installed: bash benches/e2e/setup.sh)")
        return 0
    os.environ["PATH"] = f"{TOOLS_BIN}:{os.environ.get('PATH', '')}"
    return fixed_rate(home, procs, token_file, token, seconds, max(rounds, 5))


def settings_table(results):
    rows = {key: median(values) for key, values in results.items()}
    base = rows[("defaults", "public")]["rps"]
    print("\n| setting | public req/s | p99 ms | protected req/s | p99 ms | public × defaults |"
          " protected / public |")
    print("|---|---|---|---|---|---|---|")
    for name, _ in SETTINGS:
        public, protected = rows[(name, "public")], rows[(name, "protected")]
        print(f"| {name} | {public['rps']:.0f} | {public['p99']:.2f} | {protected['rps']:.0f} | "
              f"{protected['p99']:.2f} | {public['rps'] / base:.2f} | "
              f"{protected['rps'] / public['rps']:.2f} |")


def fixed_rate(home, procs, token_file, token, seconds, rounds):
    last = CORES - 1
    upstream = free_port()
    conf = nginx_config(home, "nginx-pinned", upstream, 1, 'return 200 "hello\\n";')
    procs.start("nginx-pinned", pinned(0, ["nginx", "-p", home, "-c", conf]), upstream)
    config, port = credgate_config(home, "credgate-pinned", upstream, extra_server="threads = 1",
                                   log='level = "info"\nformat = "json"')
    procs.start("credgate-pinned", pinned(last, [BIN, "--config", config, "serve"]), port)
    request_log = RequestLog(os.path.join(home, "credgate-pinned.log"))
    peak = checked("peak", "protected, pinned", wrk(
        f"http://127.0.0.1:{port}/api/x", seconds, "bearer.lua", {"TOKENS": token_file},
        pin=0))["rps"]
    rate = int(peak / 2)
    fixed = {"public": [], "protected": []}
    served = []
    request_log.since()
    for round_ in range(1, rounds + 1):
        print(f"--- fixed rate {rate}/s, round {round_}/{rounds}", flush=True)
        runs = {kind: oha(f"http://127.0.0.1:{port}{path}", rate // 2, seconds, token)
                for kind, path in (("public", "/open/x"), ("protected", "/api/x"))}
        for kind, run in runs.items():
            fixed[kind].append(oha_result(run))
        served.append(request_log.since())
    by_p99 = {k: sorted(v, key=lambda r: r["p99"])[len(v) // 2] for k, v in fixed.items()}
    print(f"\nfixed rate {rate} req/s (half the pinned protected peak of {peak:.0f}), "
          "median round by p99:")
    print("| route | req/s sent | p50 ms | p99 ms |")
    print("|---|---|---|---|")
    for kind in ("public", "protected"):
        row = by_p99[kind]
        print(f"| {kind} | {row['rps']:.0f} | {row['p50']:.3f} | {row['p99']:.3f} |")
    for quantile in ("p50", "p99"):
        added = [pr[quantile] - pu[quantile]
                 for pu, pr in zip(fixed["public"], fixed["protected"])]
        print(f"{quantile} auth adds, per round: {', '.join(f'{a:.3f}' for a in added)} ms; "
              f"median {sorted(added)[len(added) // 2]:.3f} ms"
              + (" (target <= 0.1)" if quantile == "p99" else ""))
    print("credgate's own p99 (request log), public / protected, per round: "
          + ", ".join(f"{percentile(r['/open/'], 0.99):.3f} / {percentile(r['/api/'], 0.99):.3f}"
                      for r in served) + " ms")
    for quantile, q in (("p50", 0.50), ("p99", 0.99)):
        added = [percentile(r["/api/"], q) - percentile(r["/open/"], q) for r in served]
        print(f"{quantile} auth adds in credgate (request log), per round: "
              f"{', '.join(f'{a:.3f}' for a in added)} ms; "
              f"median {sorted(added)[len(added) // 2]:.3f} ms"
              + (" (target <= 0.1)" if quantile == "p99" else ""))
    return 0


class RequestLog:
    """credgate's JSON request lines, read as they are appended."""

    def __init__(self, path):
        self.path = path
        self.offset = 0

    def since(self):
        """`latency_ms` of every request logged since the last call, by route."""
        by_route = {"/open/": [], "/api/": []}
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            lines = f.read().split(b"\n")
        # A last line without its newline yet is read again next time.
        self.offset += sum(len(line) + 1 for line in lines[:-1])
        for line in lines[:-1]:
            if b'"message":"request"' not in line:
                continue
            fields = json.loads(line)["fields"]
            if fields["route"] in by_route and fields["status"] == 200:
                by_route[fields["route"]].append(float(fields["latency_ms"]))
        return by_route


def percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--fixed-rate-only"]
    seconds = min(int(args[0]) if args else 8, 30)
    rounds = min(int(args[1]) if len(args) > 1 else 3, 9)
    if not all(shutil.which(tool) for tool in ("wrk", "nginx", "taskset")):
        sys.exit("settings: run benches/e2e/setup.sh first (wrk, nginx)")
    sys.exit(main(seconds, rounds, settings="--fixed-rate-only" not in sys.argv))
