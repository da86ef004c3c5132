"""What the load scripts share (soak.py, e2e/run.py): the release binary, free loopback
ports, waiting for a listener, argon2id hashes made by the CLI, atomic writes, RSS."""

import json
import os
import socket
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "credgate")


def build_release():
    print("--- building the release binaries (credgate, bare-pingora)", flush=True)
    subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "credgate"], cwd=ROOT,
                   check=True)
    subprocess.run(["cargo", "build", "--release", "--quiet", "-p", "bare-pingora"], cwd=ROOT,
                   check=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, what="the gateway", limit=30):
    deadline = time.time() + limit
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{what} did not come up on port {port}")


def new_secret():
    """A fresh client secret and its argon2id hash, made by `credgate client add` in a scratch
    registry (the CLI is the one place secrets are generated and hashed)."""
    with tempfile.TemporaryDirectory() as scratch:
        registry = os.path.join(scratch, "clients.toml")
        with open(registry, "w") as f:
            f.write("# scratch\n")
        config = os.path.join(scratch, "credgate.toml")
        with open(config, "w") as f:
            f.write(
                f'[server]\nlisten = "127.0.0.1:1"\n[issuer]\nissuer = "http://x"\n'
                f'keys_dir = "{scratch}/keys"\naudience = "a"\n[registry]\npath = "{registry}"\n'
            )
        out = subprocess.run(
            [BIN, "--config", config, "client", "add", "--name", "x", "--id", "x", "--json"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        secret = json.loads(out)["client_secret"]
        hash_ = open(registry).read().split('hash = "', 1)[1].split('"', 1)[0]
        return secret, hash_


def write_atomically(path, text):
    staged = path + ".staged"
    with open(staged, "w") as f:
        f.write(text)
    os.replace(staged, path)


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0
