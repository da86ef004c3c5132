#!/usr/bin/env python3
"""Instructions per request, counted by valgrind's callgrind: stable where wall-clock is not.

    python3 benches/instructions.py            # 500 and 1500 requests per scenario
    python3 benches/instructions.py 1000 3000  # other counts (at most 5000)

Each server runs under callgrind twice, once serving N1 requests and once N2, all sequential on
one kept-alive loopback connection; the difference of the two totals, divided by N2 - N1, is
what one request costs, with start-up and shutdown cancelled out. Scenarios:
  bare      an empty Pingora pass-through (benches/bare-pingora), the baseline
  forwarding the same with --forwarding: credgate's default upstream timeouts and
            X-Forwarded-For/-Proto, through the same Pingora calls as credgate
  public    credgate, a public route
  protected credgate, a protected route, one token (validation cache hits)
  token     credgate's token endpoint, one client (verified-secret cache hits: a signature and
            the registry, no argon2id, which both runs pay once for the first request)
credgate runs with its request log on (info, JSON), as in production. The upstream is a small
Python server outside callgrind, so its cost is not counted.
"""

import http.client
import http.server
import os
import re
import subprocess
import sys
import tempfile
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import BIN, ROOT, build_release, free_port, new_secret, wait_port  # noqa: E402

BARE = os.path.join(ROOT, "target", "release", "bare-pingora")


class Upstream(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        body = b"ok\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def start_upstream():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server.server_address[1]


def credgate_config(home, upstream):
    port = free_port()
    path = os.path.join(home, "credgate.toml")
    with open(path, "w") as f:
        f.write(
            f'[server]\nlisten = "127.0.0.1:{port}"\ngrace_period = "1s"\nthreads = 1\n'
            f'[issuer]\nissuer = "http://bench"\nkeys_dir = "{home}/keys"\naudience = "api"\n'
            f'[registry]\npath = "{home}/clients.toml"\nwatch = false\n'
            f'[[route]]\nprefix = "/open/"\nupstream = "127.0.0.1:{upstream}"\npublic = true\n'
            f'[[route]]\nprefix = "/api/"\nupstream = "127.0.0.1:{upstream}"\n'
            f'scopes = ["api.read"]\n[log]\nlevel = "info"\nformat = "json"\n'
        )
    return path, port


GRANT = "grant_type=client_credentials"


def basic(secret):
    return {"Content-Type": "application/x-www-form-urlencoded",
            "Authorization": "Basic " + __import__("base64").b64encode(
                f"bench:{secret}".encode()).decode()}


def token(port, secret):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    conn.request("POST", "/connect/token", body=GRANT, headers=basic(secret))
    response = conn.getresponse()
    body = response.read()
    assert response.status == 200, body
    return __import__("json").loads(body)["access_token"]


def counted(argv, port, home, name, requests, path, headers, body=None):
    """Total instructions of the server in `argv` serving `requests` requests to `path` (GET,
    or POST with `body`)."""
    out = os.path.join(home, f"{name}-{requests}.callgrind")
    log = open(os.path.join(home, f"{name}-{requests}.log"), "w")
    process = subprocess.Popen(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", "--dump-instr=no"] + argv,
        stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        wait_port(port, name, limit=120)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        hdrs = dict(headers(port))
        for _ in range(requests):
            conn.request("GET" if body is None else "POST", path, body=body, headers=hdrs)
            response = conn.getresponse()
            response.read()
            assert response.status == 200, response.status
        conn.close()
    finally:
        process.terminate()
        process.wait(timeout=300)
    with open(out) as f:
        match = re.search(r"^(?:summary|totals): (\d+)", f.read(), re.M)
    return int(match.group(1))


def per_request(argv, port, home, name, n1, n2, path, headers=lambda port: {}, body=None):
    low = counted(argv, port, home, name, n1, path, headers, body)
    high = counted(argv, port, home, name, n2, path, headers, body)
    return (high - low) / (n2 - n1)


def main(n1, n2):
    build_release()
    home = tempfile.mkdtemp(prefix="credgate-instructions-")
    secret, hash_ = new_secret()
    with open(os.path.join(home, "clients.toml"), "w") as f:
        f.write('[[client]]\nid = "bench"\nname = "Bench"\nscopes = ["api.read"]\n\n'
                f'[[client.secret]]\nhash = "{hash_}"\n')
    upstream = start_upstream()
    bare_port = free_port()
    config, port = credgate_config(home, upstream)
    # One token for every protected run, minted by a first start outside callgrind (which also
    # generates the key), so no run counts an argon2 verification the other does not.
    first = subprocess.Popen([BIN, "--config", config, "serve"], stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        bearer_token = token(port, secret)
    finally:
        first.terminate()
        first.wait(timeout=30)

    def bearer(_port):
        return {"Authorization": f"Bearer {bearer_token}"}

    rows = [
        ("bare Pingora pass-through",
         per_request([BARE, f"127.0.0.1:{bare_port}", f"127.0.0.1:{upstream}", "1"],
                     bare_port, home, "bare", n1, n2, "/x")),
        ("bare Pingora, upstream timeouts + X-Forwarded-* (--forwarding)",
         per_request([BARE, f"127.0.0.1:{bare_port}", f"127.0.0.1:{upstream}", "1",
                      "--forwarding"], bare_port, home, "forwarding", n1, n2, "/x")),
        ("credgate public route",
         per_request([BIN, "--config", config, "serve"], port, home, "public", n1, n2,
                     "/open/x")),
        ("credgate protected route, cached token",
         per_request([BIN, "--config", config, "serve"], port, home, "protected", n1, n2,
                     "/api/x", bearer)),
        ("credgate token endpoint, cached secret",
         per_request([BIN, "--config", config, "serve"], port, home, "token", n1, n2,
                     "/connect/token", lambda _port: basic(secret), GRANT)),
    ]
    base = rows[0][1]
    print(f"\ninstructions per request ({n2 - n1} requests between two runs; logs: {home})")
    print("| scenario | instructions | × bare Pingora |")
    print("|---|---|---|")
    for name, value in rows:
        print(f"| {name} | {value:,.0f} | {value / base:.2f} |")


if __name__ == "__main__":
    n1 = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    n2 = int(sys.argv[2]) if len(sys.argv) > 2 else 1500
    if not 0 <= n1 < n2 <= 5000:
        sys.exit("usage: instructions.py [N1 N2] with 0 <= N1 < N2 <= 5000")
    sys.exit(main(n1, n2))
