#!/usr/bin/env python3
"""Can clients that never read their responses lock others out of the daemon?

Starts moto and `ecs-secrets daemon` on free loopback ports, opens CLIENTS connections with a
2 KiB receive buffer that pipeline requests (half /ping, half a 4000-byte secret) and never
read, then times FRESH new connections, each sending one /ping and staying open (so each
needs a slot). Prints the fresh pings' latencies, and how long the stuck connections stay
open when nobody needs their slots. Every request goes to loopback; every loop is bounded.

Usage: python3 bench/daemon_hold.py [--bin PATH] [--clients 256] [--fresh 200]
       (default binary: the debug build; pass the release one, or a baseline, to compare)
"""
import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url, limit=60):
    deadline = time.time() + limit
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except Exception:
            time.sleep(0.2)
    sys.exit(f"bench: {url} did not answer")


def stuck_clients(port, n, requests):
    socks = []
    for i in range(n):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
        s.connect(("127.0.0.1", port))
        s.settimeout(0.2)
        socks.append(s)
    for i, s in enumerate(socks):
        try:
            s.sendall(requests[i % 2])
        except OSError:
            pass  # our send buffer is full: the daemon stopped reading us
    return socks


def open_at_daemon(port):
    """Connections the daemon still has open (its side of them, as the kernel sees it)."""
    out = subprocess.run(["ss", "-Htn", "state", "established", f"( sport = :{port} )"],
                         capture_output=True, text=True, check=True).stdout
    return len(out.splitlines())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(ROOT, "target/x86_64-unknown-linux-gnu/debug/ecs-secrets"))
    ap.add_argument("--clients", type=int, default=256)
    ap.add_argument("--fresh", type=int, default=200)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="ecs-secrets-hold-")
    moto_port, port = free_port(), free_port()
    env = dict(os.environ, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
               AWS_REGION="us-east-1", AWS_ENDPOINT_URL=f"http://127.0.0.1:{moto_port}",
               AWS_EC2_METADATA_DISABLED="true")
    procs = []
    try:
        log = open(os.path.join(tmp, "moto.log"), "w")
        procs.append(subprocess.Popen(["moto_server", "-H", "127.0.0.1", "-p", str(moto_port)],
                                      stdout=log, stderr=log))
        wait_http(f"http://127.0.0.1:{moto_port}/moto-api/")
        subprocess.run([a.bin, "create", "--path", "/bench/hold", "--name", "A",
                        "--payload", "v" * 4000], env=env, check=True, stdout=subprocess.DEVNULL)
        dlog = open(os.path.join(tmp, "daemon.log"), "w")
        procs.append(subprocess.Popen([a.bin, "daemon", "--path", "/bench/hold", "--listen",
                                       f"127.0.0.1:{port}"], env=env, stderr=dlog))
        wait_http(f"http://127.0.0.1:{port}/ping")
        reqs = [b"GET /ping HTTP/1.1\r\nHost: localhost\r\n\r\n" * 3000,
                b"GET /latest/secrets/A HTTP/1.1\r\nHost: localhost\r\n\r\n" * 300]
        t0 = time.time()
        stuck = stuck_clients(port, a.clients, reqs)
        print(f"bench: {a.clients} clients pipelining without reading, set up in {time.time() - t0:.1f}s")
        lat, failed, fresh = [], 0, []
        for _ in range(a.fresh):
            t = time.time()
            try:
                c = socket.create_connection(("127.0.0.1", port), timeout=15)
                c.settimeout(15)
                c.sendall(b"GET /ping HTTP/1.1\r\nHost: localhost\r\n\r\n")
                if not c.recv(64).startswith(b"HTTP/1.1 200"):
                    failed += 1
                fresh.append(c)
            except OSError:
                failed += 1
            lat.append(time.time() - t)
            if failed and time.time() - t0 > 120:
                break
        lat.sort()
        print(f"fresh /ping (each kept open): {len(lat)} sent, {failed} failed, "
              f"median {lat[len(lat) // 2] * 1e3:.1f} ms, max {lat[-1] * 1e3:.1f} ms")
        for c in fresh:
            c.close()
        time.sleep(0.5)
        # The daemon first answers what fits in each stuck client's window (a debug build
        # takes seconds for ~250,000 pipelined pings); its writes stall then, and each stalled
        # connection is closed 10 s later.
        for wait in (5, 10, 15, 20, 25, 30):
            time.sleep(max(0, t0 + wait - time.time()))
            print(f"connections the daemon still holds {wait:>2}s after the stuck clients "
                  f"sent their requests: {open_at_daemon(port)} (of {len(stuck)} stuck)")
        for s in stuck:
            s.close()
    finally:
        for p in reversed(procs):
            p.terminate()
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()


if __name__ == "__main__":
    main()
