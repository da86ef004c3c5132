#!/usr/bin/env python3
"""Soak test: a release gateway under mixed load with a registry reload every second.

    python3 benches/soak.py            # 120 s
    python3 benches/soak.py 300        # at most 300 s

Starts `target/release/credgate` (built first) on free loopback ports with the built-in echo
upstream, then runs for the given time, each worker on its own keep-alive connection:
  - token requests with the right secret (200) and with a wrong one (401, or 429 once the
    brute-force limit trips);
  - protected calls with a valid token (200), a forged one (401), and a token lacking the
    route's scope (403);
while the registry file is rewritten every second (a client renamed; every tenth write is
invalid and must be rejected while the previous registry serves). The gateway's RSS is sampled
every second.

Prints counts per kind, every unexpected status, the reloads applied and rejected, and RSS.
Exits 1 on any unexpected status or failed request, or if RSS after the warm-up grew by more
than 20 %. Loopback only; bounded in time.
"""

import base64
import http.client
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

from harness import BIN, build_release, free_port, new_secret, rss_kib, wait_port, write_atomically

WARMUP = 10


def registry_text(hash_, version, valid=True):
    if not valid:
        return '[[client]]\nid = "half-written"\n'
    # Only "other" changes: an edit of "reader" would void its verified secret, and its token
    # requests would then meet the per-address limit the wrong-secret worker trips.
    return "".join(
        f'[[client]]\nid = "{cid}"\nname = "{name}"\nscopes = {scopes}\n\n'
        f'[[client.secret]]\ndescription = "soak"\nhash = "{hash_}"\n\n'
        for cid, name, scopes in [
            ("reader", "reader", '["soak.read"]'),
            ("other", f"other v{version}", '["soak.other"]'),
        ]
    )


def write_atomically(path, text):
    staged = path + ".staged"
    with open(staged, "w") as f:
        f.write(text)
    os.replace(staged, path)


class Connection:
    """One keep-alive HTTP connection; reconnects when the gateway closes it."""

    def __init__(self, port):
        self.port = port
        self.conn = None

    def request(self, method, path, body=None, headers=None):
        for attempt in range(2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            try:
                self.conn.request(method, path, body=body, headers=headers or {})
                response = self.conn.getresponse()
                data = response.read()
                if response.getheader("connection", "").lower() == "close":
                    self.conn.close()
                    self.conn = None
                return response.status, data
            except (http.client.HTTPException, OSError):
                self.conn.close()
                self.conn = None
                if attempt == 1:
                    raise
        raise AssertionError("unreachable")


def basic(cid, secret):
    return "Basic " + base64.b64encode(f"{cid}:{secret}".encode()).decode()


FORM = {"content-type": "application/x-www-form-urlencoded"}


def get_token(conn, cid, secret):
    status, body = conn.request(
        "POST", "/connect/token", "grant_type=client_credentials",
        {**FORM, "authorization": basic(cid, secret)},
    )
    if status != 200:
        raise RuntimeError(f"token for {cid}: {status} {body[:200]!r}")
    return json.loads(body)["access_token"]


def main():
    seconds = min(int(sys.argv[1]) if len(sys.argv) > 1 else 120, 300)
    build_release()
    secret, hash_ = new_secret()
    home = tempfile.mkdtemp(prefix="credgate-soak-")
    registry = os.path.join(home, "clients.toml")
    write_atomically(registry, registry_text(hash_, 0))
    port, admin, echo = free_port(), free_port(), free_port()
    config = os.path.join(home, "credgate.toml")
    with open(config, "w") as f:
        f.write(
            f'[server]\nlisten = "127.0.0.1:{port}"\ngrace_period = "1s"\n'
            f'[issuer]\nissuer = "http://127.0.0.1:{port}"\nkeys_dir = "{home}/keys"\n'
            f'audience = "soak"\nsecret_cache_ttl = "10m"\n'
            f'[registry]\npath = "{registry}"\n'
            f'[[route]]\nprefix = "/api/"\nupstream = "127.0.0.1:{echo}"\nscopes = ["soak.read"]\n'
            f'[admin]\nlisten = "127.0.0.1:{admin}"\n[demo]\necho_upstream = "127.0.0.1:{echo}"\n'
        )
    log = open(os.path.join(home, "gateway.log"), "w")
    gateway = subprocess.Popen(
        [BIN, "--config", config, "serve"], stdout=subprocess.DEVNULL, stderr=log,
        env={**os.environ, "RUST_LOG": "warn"},
    )
    try:
        return soak(seconds, port, admin, registry, hash_, secret, gateway.pid)
    finally:
        gateway.terminate()
        gateway.wait(timeout=20)
        print(f"gateway log: {log.name}")


def metric(admin_conn, name):
    _, body = admin_conn.request("GET", "/metrics")
    total = 0.0
    for line in body.decode().splitlines():
        if line.startswith(name):
            total += float(line.rsplit(" ", 1)[1])
    return total


def soak(seconds, port, admin, registry, hash_, secret, pid):
    wait_port(port)
    wait_port(admin)
    setup = Connection(port)
    good = get_token(setup, "reader", secret)
    lacking = get_token(setup, "other", secret)
    forged = good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB")
    kinds = {
        "token": ("POST", "/connect/token", "grant_type=client_credentials",
                  {**FORM, "authorization": basic("reader", secret)}, {200}),
        "wrong_secret": ("POST", "/connect/token", "grant_type=client_credentials",
                         {**FORM, "authorization": basic("reader", "wrong")}, {401, 429}),
        "valid_call": ("GET", "/api/soak", None, {"authorization": f"Bearer {good}"}, {200}),
        "forged_call": ("GET", "/api/soak", None, {"authorization": f"Bearer {forged}"}, {401}),
        "lacking_scope": ("GET", "/api/soak", None, {"authorization": f"Bearer {lacking}"}, {403}),
    }
    counts = {k: 0 for k in kinds}
    unexpected = []
    failures = []
    lock = threading.Lock()
    stop = time.time() + seconds

    def worker(kind):
        method, path, body, headers, expected = kinds[kind]
        conn = Connection(port)
        while time.time() < stop:
            try:
                status, data = conn.request(method, path, body, headers)
            except Exception as e:  # noqa: BLE001 - every failure is reported
                with lock:
                    failures.append(f"{kind}: {e!r}")
                continue
            with lock:
                counts[kind] += 1
                if status not in expected and len(unexpected) < 20:
                    unexpected.append(f"{kind}: {status} {data[:200]!r}")
                elif status not in expected:
                    unexpected.append(kind)
            if kind == "wrong_secret":
                time.sleep(0.05)

    threads = [threading.Thread(target=worker, args=(k,)) for k in kinds for _ in range(2)]
    for t in threads:
        t.start()
    admin_conn = Connection(admin)
    rss = []
    version = 0
    print(f"--- soaking for {seconds}s")
    while time.time() < stop:
        time.sleep(1)
        version += 1
        write_atomically(registry, registry_text(hash_, version, valid=version % 10 != 0))
        rss.append(rss_kib(pid))
    for t in threads:
        t.join()
    applied = metric(admin_conn, 'credgate_registry_reloads_total{result="applied"}')
    rejected = metric(admin_conn, 'credgate_registry_reloads_total{result="rejected"}')

    total = sum(counts.values())
    print(f"requests: {total} ({total / seconds:.0f}/s)")
    for kind, n in counts.items():
        print(f"  {kind:14} {n}")
    print(f"registry writes: {version}; reloads applied {applied:.0f}, rejected {rejected:.0f}")
    settled = rss[WARMUP:] or rss
    growth = (settled[-1] - settled[0]) / settled[0] if settled and settled[0] else 0.0
    print(
        f"RSS MiB: start {rss[0] / 1024:.1f}, after warm-up {settled[0] / 1024:.1f}, "
        f"max {max(rss) / 1024:.1f}, end {rss[-1] / 1024:.1f} ({growth:+.1%} after warm-up)"
    )
    trajectory = ", ".join(f"{r / 1024:.0f}" for r in rss[:: max(1, len(rss) // 10)])
    print(f"RSS MiB every {max(1, len(rss) // 10)} s: {trajectory}")
    print(f"unexpected statuses: {len(unexpected)}; failed requests: {len(failures)}")
    for line in (unexpected + failures)[:20]:
        print(f"  {line}")
    ok = not unexpected and not failures and growth <= 0.20 and rejected >= 1
    print("soak: OK" if ok else "soak: FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
