#!/usr/bin/env python3
"""End-to-end load comparison, in one run on one machine (loopback only, bounded).

    bash benches/e2e/setup.sh          # once: wrk, nginx, HAProxy, oidc-provider
    python3 benches/e2e/run.py         # 3 rounds of 8 s per scenario: about 8 minutes
    python3 benches/e2e/run.py 10 5    # 5 rounds of 10 s (at most 30 s and 9 rounds)

With the same wrk settings (2 threads, 32 connections, keep-alive) for every row, in rounds
that each run every row once; a row's figures are its median round (by req/s), and the median
over rounds of the CPU time (user + system, from /proc) its server spent per request, which
leaves out wrk and the upstream that share the cores:
  0a a bare Pingora pass-through (benches/bare-pingora: same Pingora, same allocator, an
     empty ProxyHttp), in front of the same upstream: what Pingora alone costs
  0c the same bare Pingora with --forwarding: credgate's default upstream timeouts and
     X-Forwarded-For/-Proto through the same Pingora calls, which any gateway with those
     duties pays; row 2 against 0c is credgate's own work
  0b nginx proxy_pass (2 workers, upstream keepalive) in front of the same upstream
  1  nginx (the upstream) directly
  2  credgate, public route (log level warn: no request log line)
  2c credgate, public route, request log on (info, JSON lines to a file, as in production)
  2b credgate, public route, with row 3's Authorization header (removed, never read): row 3
     against 2b is what checking the token costs; 2b against 2 is what its 600 bytes cost
     on the wire (wrk writing them, the kernel copying them, Pingora parsing them)
  3  credgate, protected route, one token (validation cache hits)
  4  credgate, protected route, 10 000 distinct tokens in turn, validation cache off (misses)
  5  HAProxy jwt_verify ES256 + exp check, the same 10 000 tokens
  6  credgate token endpoint, verified-secret cache on / cold (argon2id every request)
  7  node oidc-provider, client_credentials with ES256 JWT access tokens
  8  credgate public route while 32 more connections flood its token endpoint with wrong
     secrets (brute-force limits off: the worst case, an attack from many addresses)
credgate signs with ES256 here, as HAProxy verifies. Machines are shared and noisy, so only
the ratios between rows of the same run mean much. Every server gets both cores; wrk takes
one of them too. Rows interleave across rounds, so a slow minute of the host hits every row.
"""

import base64
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from harness import BIN, build_release, free_port, new_secret, wait_port  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ISSUER = "http://credgate.bench"
CONNECTIONS = 32
DISTINCT_TOKENS = 10_000


class Processes:
    """The servers of the run; all stopped at the end, whatever happens."""

    def __init__(self, home):
        self.home = home
        self.running = []
        self.by_port = {}

    def start(self, name, argv, port, env=None, cwd=None):
        log = open(os.path.join(self.home, f"{name}.log"), "w")
        process = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, cwd=cwd, env={**os.environ, **(env or {})}
        )
        self.running.append(process)
        self.by_port[port] = process
        wait_port(port, name)
        return process

    def cpu_seconds(self, url):
        """CPU time (user + system) used so far by the server behind `url` and its child
        processes (nginx's workers)."""
        pid = self.by_port[int(re.search(r":(\d+)/", url).group(1))].pid
        pids = [pid]
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                pids += [int(child) for child in f.read().split()]
        total = 0
        for each in pids:
            with open(f"/proc/{each}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (stat fields 14, 15)
        return total / os.sysconf("SC_CLK_TCK")

    def stop(self):
        for process in self.running:
            process.terminate()
        for process in self.running:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()


def credgate_config(home, name, nginx, extra_issuer="", extra_guard="", extra_server="",
                    log='level = "warn"'):
    """Writes the config of one credgate instance; returns (path, port)."""
    port = free_port()
    path = os.path.join(home, f"{name}.toml")
    with open(path, "w") as f:
        f.write(
            f'[server]\nlisten = "127.0.0.1:{port}"\ngrace_period = "1s"\n{extra_server}\n'
            f'[issuer]\nissuer = "{ISSUER}"\nkeys_dir = "{home}/keys"\nalgorithm = "ES256"\n'
            f'audience = "bench-api"\n{extra_issuer}\n'
            f'[registry]\npath = "{home}/clients.toml"\n'
            f"[guard]\n{extra_guard}\n"
            f'[[route]]\nprefix = "/open/"\nupstream = "127.0.0.1:{nginx}"\npublic = true\n'
            f'[[route]]\nprefix = "/api/"\nupstream = "127.0.0.1:{nginx}"\nscopes = ["api.read"]\n'
            f'[log]\n{log}\n'
        )
    return path, port


def nginx_config(home, name, port, workers, location, upstreams=""):
    """An nginx of `workers` processes on `port` whose one `location /` is `location`;
    `upstreams` goes into its `http` block."""
    path = os.path.join(home, f"{name}.conf")
    with open(path, "w") as f:
        f.write(
            f"worker_processes {workers};\ndaemon off;\npid {home}/{name}.pid;\n"
            f"error_log {home}/{name}-error.log;\nevents {{ worker_connections 4096; }}\n"
            f"http {{\n  access_log off;\n{upstreams}"
            f"  server {{\n    listen 127.0.0.1:{port};\n    location / {{ {location} }}\n  }}\n}}\n"
        )
    return path


def haproxy_config(home, port, nginx, public_key):
    deny = "http-request return status 401 content-type application/json string"
    body = "'{\"error\":\"invalid_token\"}'"
    path = os.path.join(home, "haproxy.cfg")
    with open(path, "w") as f:
        f.write(
            "global\n  nbthread 2\n  maxconn 4096\n"
            "defaults\n  mode http\n  timeout connect 5s\n  timeout client 30s\n"
            "  timeout server 30s\n"
            f"frontend bench\n  bind 127.0.0.1:{port}\n"
            "  http-request set-var(txn.bearer) http_auth_bearer\n"
            f"  {deny} {body} unless {{ var(txn.bearer) -m found }}\n"
            f'  {deny} {body} unless {{ var(txn.bearer),jwt_verify("ES256","{public_key}") -m int 1 }}\n'
            "  http-request set-var(txn.exp) var(txn.bearer),jwt_payload_query('$.exp','int')\n"
            "  http-request set-var(txn.now) date()\n"
            f"  {deny} {body} if {{ var(txn.exp),sub(txn.now) -m int lt 0 }}\n"
            "  default_backend upstream\n"
            f"backend upstream\n  server nginx 127.0.0.1:{nginx}\n"
        )
    return path


def basic(client_id, secret):
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def mint_tokens(port, authorization, count):
    """`count` distinct tokens from credgate's token endpoint, four requests at a time."""
    tokens = []
    lock = threading.Lock()

    def worker(n):
        for _ in range(n):
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/connect/token",
                data=b"grant_type=client_credentials",
                headers={"Authorization": authorization},
            )
            with urllib.request.urlopen(request) as response:
                token = json.load(response)["access_token"]
            with lock:
                tokens.append(token)

    threads = [threading.Thread(target=worker, args=(count // 4,)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(tokens)) == count, "tokens must be distinct"
    return tokens


UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def wrk(url, seconds, script=None, env=None, connections=CONNECTIONS, pin=None):
    """Runs wrk (on CPU `pin` only, if given); returns req/s, p50 and p99 in ms, and the count
    of non-2xx answers."""
    argv = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "10s"]
    if pin is not None:
        argv = ["taskset", "-c", str(pin)] + argv
    if script:
        argv += ["-s", os.path.join(HERE, script)]
    out = subprocess.run(
        argv + [url], capture_output=True, text=True, env={**os.environ, **(env or {})}
    ).stdout

    def latency(percent):
        match = re.search(rf"^\s+{percent}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        return float(match.group(1)) * UNITS[match.group(2)] if match else float("nan")

    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    return {
        "rps": float(rps.group(1)) if rps else 0.0,
        "requests": int(total.group(1)) if total else 0,
        "p50": latency(50),
        "p99": latency(99),
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
        "socket_errors": errors.group(1) if errors else "",
        "raw": out,
    }


def served(procs, url, seconds, script=None, env=None):
    """`wrk` on `url`, with the CPU time its server spent per request (`cpu_us`): what the
    server itself costs, apart from wrk and the upstream sharing the cores."""
    before = procs.cpu_seconds(url)
    result = wrk(url, seconds, script, env)
    spent = procs.cpu_seconds(url) - before
    result["cpu_us"] = spent * 1e6 / result["requests"] if result["requests"] else float("nan")
    return result


def checked(number, name, result):
    """`result` of row `number`, after making sure every request got a 2xx answer."""
    if result["non_2xx"] or result["socket_errors"] or not result["rps"]:
        print(result["raw"])
        raise RuntimeError(f"row {number}: failed or refused requests")
    result.update(number=number, name=name)
    return result


def median(results):
    """The result of the median round by req/s (its latencies come with it)."""
    return sorted(results, key=lambda r: r["rps"])[len(results) // 2]


def run(seconds, rounds):
    build_release()
    home = tempfile.mkdtemp(prefix="credgate-e2e-")
    procs = Processes(home)
    try:
        return scenarios(seconds, rounds, home, procs)
    finally:
        procs.stop()
        print(f"logs: {home}")


def scenarios(seconds, rounds, home, procs):
    secret, hash_ = new_secret()
    with open(os.path.join(home, "clients.toml"), "w") as f:
        f.write(
            '[[client]]\nid = "bench"\nname = "Bench"\nscopes = ["api.read"]\n'
            f'token_lifetime = "1h"\n\n[[client.secret]]\ndescription = "bench"\nhash = "{hash_}"\n'
        )
    authorization = basic("bench", secret)

    nginx = free_port()
    upstream_conf = nginx_config(home, "nginx", nginx, 1, 'return 200 "hello from the upstream\\n";')
    procs.start("nginx", ["nginx", "-p", home, "-c", upstream_conf], nginx)
    bare = free_port()
    bare_pingora = os.path.join(os.path.dirname(BIN), "bare-pingora")
    procs.start("bare-pingora", [bare_pingora, f"127.0.0.1:{bare}", f"127.0.0.1:{nginx}", "2"],
                bare)
    forwarding = free_port()
    procs.start("bare-pingora-forwarding",
                [bare_pingora, f"127.0.0.1:{forwarding}", f"127.0.0.1:{nginx}", "2",
                 "--forwarding"], forwarding)
    nginx_proxy = free_port()
    # nginx as a reverse proxy: 2 workers, keep-alive to the upstream.
    proxy_conf = nginx_config(
        home, "nginx-proxy", nginx_proxy, 2,
        'proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection "";',
        f"  upstream backend {{ server 127.0.0.1:{nginx}; keepalive 64; }}\n",
    )
    procs.start("nginx-proxy", ["nginx", "-p", home, "-c", proxy_conf], nginx_proxy)
    # The main instance: caches on, brute-force limits off (scenario 8 floods it).
    limits_off = "failure_limit_per_client = 0\nfailure_limit_per_ip = 0"
    main_config, main = credgate_config(home, "credgate", nginx, limits_off)
    procs.start("credgate", [BIN, "--config", main_config, "serve"], main)
    # The cold instance: same keys and registry, no verified-secret or validation cache.
    cold_config, cold = credgate_config(
        home, "credgate-cold", nginx,
        limits_off + '\nsecret_cache_ttl = "0s"', "cache_capacity = 0",
    )
    procs.start("credgate-cold", [BIN, "--config", cold_config, "serve"], cold)
    # As the main instance, with its request log on (JSON lines to a file), as in production.
    logged_config, logged = credgate_config(
        home, "credgate-logged", nginx, limits_off, log='level = "info"\nformat = "json"',
    )
    procs.start("credgate-logged", [BIN, "--config", logged_config, "serve"], logged)

    print(f"--- minting {DISTINCT_TOKENS} distinct tokens", flush=True)
    tokens = mint_tokens(main, authorization, DISTINCT_TOKENS)
    many = os.path.join(home, "tokens.txt")
    one = os.path.join(home, "token.txt")
    with open(many, "w") as f:
        f.write("\n".join(tokens) + "\n")
    with open(one, "w") as f:
        f.write(tokens[0] + "\n")

    key = next(p for p in os.listdir(os.path.join(home, "keys")) if p.endswith(".pem"))
    public_key = os.path.join(home, "es256-public.pem")
    subprocess.run(
        ["openssl", "pkey", "-in", os.path.join(home, "keys", key), "-pubout", "-out", public_key],
        check=True,
    )
    haproxy = free_port()
    haproxy_cfg = haproxy_config(home, haproxy, nginx, public_key)
    procs.start("haproxy", ["haproxy", "-db", "-f", haproxy_cfg], haproxy)

    oidc = free_port()
    procs.start(
        "oidc-provider", ["node", "provider.mjs"], oidc,
        env={"PORT": str(oidc), "SECRET": secret}, cwd=os.path.join(HERE, "oidc"),
    )

    bearer_one = {"TOKENS": one}
    bearer_many = {"TOKENS": many}
    token_env = {"BASIC": authorization}
    wrong_env = {"BASIC": basic("bench", "wrong")}
    plan = [
        ("0a", "bare Pingora pass-through", f"http://127.0.0.1:{bare}/x", None, None),
        ("0c", "bare Pingora, upstream timeouts + X-Forwarded-* (--forwarding)",
         f"http://127.0.0.1:{forwarding}/x", None, None),
        ("0b", "nginx proxy_pass, 2 workers, keepalive", f"http://127.0.0.1:{nginx_proxy}/x",
         None, None),
        ("1", "nginx directly", f"http://127.0.0.1:{nginx}/x", None, None),
        ("2", "credgate public route", f"http://127.0.0.1:{main}/open/x", None, None),
        ("2c", "credgate public route, request log on (JSON to a file)",
         f"http://127.0.0.1:{logged}/open/x", None, None),
        ("2b", "credgate public route, row 3's Authorization header (unread)",
         f"http://127.0.0.1:{main}/open/x", "bearer.lua", bearer_one),
        ("3", "credgate protected, 1 token (cache hits)",
         f"http://127.0.0.1:{main}/api/x", "bearer.lua", bearer_one),
        ("4", f"credgate protected, {DISTINCT_TOKENS} tokens (no cache)",
         f"http://127.0.0.1:{cold}/api/x", "bearer.lua", bearer_many),
        ("5", f"HAProxy jwt_verify ES256, {DISTINCT_TOKENS} tokens",
         f"http://127.0.0.1:{haproxy}/api/x", "bearer.lua", bearer_many),
        ("6a", "credgate token endpoint, secret cache",
         f"http://127.0.0.1:{main}/connect/token", "token.lua", token_env),
        ("6b", "credgate token endpoint, cold (argon2id)",
         f"http://127.0.0.1:{cold}/connect/token", "token.lua", token_env),
        ("7", "oidc-provider token endpoint", f"http://127.0.0.1:{oidc}/token", "token.lua",
         token_env),
    ]
    results = {number: [] for number, *_ in plan}
    results["8"] = []
    floods = []
    for round_ in range(1, rounds + 1):
        print(f"--- round {round_}/{rounds}", flush=True)
        for number, name, url, script, env in plan:
            results[number].append(checked(number, name, served(procs, url, seconds, script, env)))
        # 8: the public route while 32 more connections flood the token endpoint.
        flood = {}
        flooding = threading.Thread(target=lambda: flood.update(
            wrk(f"http://127.0.0.1:{main}/connect/token", seconds + 2, "token.lua", wrong_env)
        ))
        flooding.start()
        time.sleep(1)
        results["8"].append(checked(
            "8", "credgate public route under a wrong-secret flood",
            served(procs, f"http://127.0.0.1:{main}/open/x", seconds),
        ))
        flooding.join()
        floods.append(flood["rps"])
    rows = []
    for number in results:
        row = dict(median(results[number]))
        # The flood's own requests (and their argon2id) run in the same process.
        cpu = [r["cpu_us"] for r in results[number]] if number != "8" else [float("nan")]
        row["cpu_us"] = statistics.median(cpu)
        rows.append(row)
    eight = rows[-1]
    print(f"the flood: {statistics.median(floods):.0f} wrong-secret requests/s answered")

    report(rows, eight)
    return 0


def report(rows, eight):
    by = {r["number"]: r for r in rows}
    refs = [("0a", "× row 0a"), ("0c", "× row 0c"), ("2", "× row 2"), ("5", "× row 5"),
            ("7", "× row 7")]
    header = (f"| # | scenario | req/s | p50 ms | p99 ms | {' | '.join(n for _, n in refs)} "
              "| server CPU µs/req | CPU × row 0a |")
    print()
    print(header)
    print("|" + "---|" * (7 + len(refs)))
    for r in rows:
        ratios = []
        for ref, _ in refs:
            base = by[ref]["rps"]
            ratios.append(f"{r['rps'] / base:.2f}" if base else "-")
        cpu, cpu_ratio = "-", "-"
        if r["cpu_us"] == r["cpu_us"]:  # not NaN
            cpu, cpu_ratio = f"{r['cpu_us']:.1f}", f"{r['cpu_us'] / by['0a']['cpu_us']:.2f}"
        print(f"| {r['number']} | {r['name']} | {r['rps']:.0f} | {r['p50']:.2f} | "
              f"{r['p99']:.2f} | {' | '.join(ratios)} | {cpu} | {cpu_ratio} |")
    print()
    cpu = {n: by[n]["cpu_us"] for n in ("0a", "0c", "2", "2b", "2c", "3")}
    print(f"server CPU per request: row 2 / row 0a {cpu['2'] / cpu['0a']:.2f}, row 2 / row 0c "
          f"{cpu['2'] / cpu['0c']:.2f}, row 2c / row 0a "
          f"{cpu['2c'] / cpu['0a']:.2f}, row 3 / row 2 {cpu['3'] / cpu['2']:.2f}, row 3 / row 2b "
          f"{cpu['3'] / cpu['2b']:.2f}")
    checks = [
        ("row 2 >= 0.95 x row 0a", by["2"]["rps"] / by["0a"]["rps"], 0.95),
        ("row 2 >= 0.95 x row 0c (the same duties)", by["2"]["rps"] / by["0c"]["rps"], 0.95),
        ("row 2c >= 0.95 x row 0a (request log on)", by["2c"]["rps"] / by["0a"]["rps"], 0.95),
        ("row 3 >= 0.95 x row 2", by["3"]["rps"] / by["2"]["rps"], 0.95),
        ("row 3 >= 0.95 x row 2b (auth alone)", by["3"]["rps"] / by["2b"]["rps"], 0.95),
        ("row 3 >= 1.5 x row 5", by["3"]["rps"] / by["5"]["rps"], 1.5),
        ("row 6a >= 6 x row 7", by["6a"]["rps"] / by["7"]["rps"], 6.0),
    ]
    for name, value, target in checks:
        print(f"target {name}: {value:.2f} {'met' if value >= target else 'MISSED'}")
    p99 = eight["p99"] / by["2"]["p99"]
    print(f"target row 8 p99 <= 2 x row 2 p99: {p99:.2f} {'met' if p99 <= 2 else 'MISSED'}")


if __name__ == "__main__":
    seconds = min(int(sys.argv[1]) if len(sys.argv) > 1 else 8, 30)
    rounds = min(int(sys.argv[2]) if len(sys.argv) > 2 else 3, 9)
    if not all(shutil.which(tool) for tool in ("wrk", "nginx", "haproxy", "node", "openssl")):
        sys.exit("e2e: run benches/e2e/setup.sh first (wrk, nginx, haproxy, node, openssl)")
    sys.exit(run(seconds, rounds))
