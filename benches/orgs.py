#!/usr/bin/env python3
"""Organisations at scale (issue 11), on loopback only, bounded in count and time.

    python3 benches/orgs.py              # 10 000 organisations x 10 clients, about 3 minutes
    python3 benches/orgs.py 1000 5       # fewer organisations, clients per organisation

Generates an organisations directory (one file per organisation, path mode, every client
with the same argon2id hash made by the CLI) and serves it with the release binary, then
measures, against a one-organisation gateway in the same run:
  - startup: process start to /readyz 200, and RSS once ready;
  - a change to one organisation's file: from the rename to the change being in force (a
    cached token refused, then admitted again), and the reloader's own work once the file has
    settled (its debug line), for the big and the small directory alike;
  - token endpoint (cached secret) and protected route (one token) throughput with wrk, three
    interleaved rounds of 8 s, median round: the big directory against the small one.
nginx answers 200 as the upstream. Only the ratios between rows of one run mean much.
"""

import base64
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import BIN, build_release, free_port, new_secret, rss_kib, wait_port  # noqa: E402
from e2e.run import Processes, nginx_config, wrk  # noqa: E402

ORG_FILE = """[organization]
name = "Organisation {org}"
scopes = ["api.read"]
default_roles = ["tenant-member"]

{clients}"""

CLIENT = """[[client]]
id = "c{n}"
name = "Client {n}"
scopes = ["api.read"]
roles = ["reader"]
{enabled}
[[client.secret]]
hash = "{hash}"

"""


def org_text(org, clients, hash_, disabled=False):
    body = "".join(
        CLIENT.format(n=n, hash=hash_, enabled="enabled = false" if disabled and n == 0 else "")
        for n in range(clients)
    )
    return ORG_FILE.format(org=org, clients=body)


def generate(home, name, orgs, clients, hash_, nginx):
    """An organisations directory of `orgs` files and a config serving it; (config, port, admin, dir)."""
    directory = os.path.join(home, name)
    os.makedirs(directory)
    for i in range(orgs):
        with open(os.path.join(directory, f"o{i}.toml"), "w") as f:
            f.write(org_text(f"o{i}", clients, hash_))
    port, admin = free_port(), free_port()
    config = os.path.join(home, f"{name}.toml")
    with open(config, "w") as f:
        f.write(
            f'[server]\nlisten = "127.0.0.1:{port}"\ngrace_period = "1s"\n'
            f'[issuer]\nkeys_dir = "{home}/keys"\nalgorithm = "ES256"\naudience = "bench-api"\n'
            f"failure_limit_per_client = 0\nfailure_limit_per_ip = 0\n"
            f'[organizations]\ndir = "{directory}"\n'
            f'issuer_template = "http://127.0.0.1:{port}/{{org}}"\n'
            f'[[route]]\nprefix = "/api/"\nupstream = "127.0.0.1:{nginx}"\norg = "path"\n'
            f'scopes = ["api.read"]\n'
            f'[admin]\nlisten = "127.0.0.1:{admin}"\n'
            f'[log]\nlevel = "warn,credgate::serve::reload=debug"\n'
        )
    return config, port, admin, directory


def ready(admin, limit=60):
    deadline = time.time() + limit
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{admin}/readyz", timeout=1) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, OSError):
            pass
        time.sleep(0.005)
    raise RuntimeError("not ready in time")


def status(url, token):
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def token(port, org, secret):
    auth = "Basic " + base64.b64encode(f"c0:{secret}".encode()).decode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/{org}/connect/token",
        data=b"grant_type=client_credentials",
        headers={"Authorization": auth},
    )
    with urllib.request.urlopen(request) as r:
        return json.load(r)["access_token"], auth


def change_latencies(port, directory, log, org, secret, clients, hash_, trials=6):
    """Disables then enables client c0 of `org` by rewriting its file, `trials` times; the
    milliseconds from each rename to the change being in force, and the reloader's own
    microseconds after the file settled."""
    tok, _ = token(port, org, secret)
    url = f"http://127.0.0.1:{port}/{org}/api/x"
    assert status(url, tok) == 200
    path = os.path.join(directory, f"{org}.toml")
    waits = []
    for i in range(trials):
        disabled = i % 2 == 0
        staged = path + ".staged"
        with open(staged, "w") as f:
            f.write(org_text(org, clients, hash_, disabled=disabled))
        start = time.perf_counter()
        os.replace(staged, path)
        want = 401 if disabled else 200
        while status(url, tok) != want:
            time.sleep(0.001)
        waits.append((time.perf_counter() - start) * 1000)
        time.sleep(0.3)
    work = [int(x) for x in re.findall(r"after_settle_us=(\d+)", open(log).read())]
    return waits, work[-trials:]


def main():
    orgs = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    clients = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    orgs, clients = min(orgs, 20_000), min(clients, 20)
    build_release()
    secret, hash_ = new_secret()
    home = tempfile.mkdtemp(prefix="credgate-orgs-")
    procs = Processes(home)
    try:
        upstream = free_port()
        conf = nginx_config(home, "upstream", upstream, 1, "return 200 'ok';")
        procs.start("upstream", ["nginx", "-c", conf], upstream)
        t0 = time.perf_counter()
        setups = {
            "big": generate(home, "big", orgs, clients, hash_, upstream),
            "small": generate(home, "small", 1, clients, hash_, upstream),
        }
        print(f"generated {orgs} organisation files x {clients} clients in "
              f"{time.perf_counter() - t0:.1f} s", flush=True)
        running = {}
        for name, (config, port, admin, directory) in setups.items():
            log = os.path.join(home, f"{name}.log")
            start = time.perf_counter()
            process = subprocess.Popen([BIN, "--config", config], stdout=subprocess.DEVNULL,
                                       stderr=open(log, "w"))
            procs.running.append(process)
            ready(admin)
            startup = time.perf_counter() - start
            running[name] = (process, port, log, directory)
            print(f"{name:>5}: ready in {startup:.2f} s, RSS {rss_kib(process.pid) / 1024:.0f} MiB",
                  flush=True)
        probe = {"big": f"o{orgs // 2}", "small": "o0"}
        for name, (process, port, log, directory) in running.items():
            waits, work = change_latencies(port, directory, log, probe[name], secret, clients, hash_)
            print(f"{name:>5}: one file changed -> in force: median {statistics.median(waits):.0f} ms "
                  f"(max {max(waits):.0f}); reloader work after settle: median "
                  f"{statistics.median(work) / 1000:.2f} ms (max {max(work) / 1000:.2f})", flush=True)
        rows = {}
        env = {}
        for name, (process, port, log, directory) in running.items():
            tok, auth = token(port, probe[name], secret)
            tokens = os.path.join(home, f"{name}.tokens")
            with open(tokens, "w") as f:
                f.write(tok + "\n")
            env[name] = (port, auth, tokens)
        for _ in range(3):
            for name, (port, auth, tokens) in env.items():
                org = probe[name]
                t = wrk(f"http://127.0.0.1:{port}/{org}/connect/token", 8, "token.lua",
                        {"BASIC": auth})
                p = wrk(f"http://127.0.0.1:{port}/{org}/api/x", 8, "bearer.lua",
                        {"TOKENS": tokens})
                for row, result in [(f"{name} token", t), (f"{name} protected", p)]:
                    if result["non_2xx"] or not result["rps"]:
                        print(result["raw"])
                        raise RuntimeError(f"{row}: failed requests")
                    rows.setdefault(row, []).append(result["rps"])
        for kind in ["token", "protected"]:
            big = statistics.median(rows[f"big {kind}"])
            small = statistics.median(rows[f"small {kind}"])
            print(f"{kind:>9}: {orgs} orgs {big:8.0f} req/s, 1 org {small:8.0f} req/s: "
                  f"{big / small:.2f}x", flush=True)
        for name, (process, *_rest) in running.items():
            print(f"{name:>5}: RSS after the load {rss_kib(process.pid) / 1024:.0f} MiB")
    finally:
        procs.stop()


if __name__ == "__main__":
    main()
