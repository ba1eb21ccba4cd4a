#!/usr/bin/env python3
"""A fixed number of keep-alive GETs, for instruction counts (callgrind) rather than
wall-clock speed: `bench/daemon_callgrind.sh` runs a daemon under callgrind twice, with N1
and N2 requests, and divides the difference in instructions by N2 - N1.

    keepalive.py HOST:PORT N CONNS 'Header: value' PATH [PATH...]

CONNS connections, each sending its share of N requests one after the other (round-robin
over the PATHs); every answer must be 200 with a body. Exits non-zero otherwise.
"""
import socket
import sys
import threading


def run(addr, count, header, paths, errors):
    host, port = addr.rsplit(":", 1)
    s = socket.create_connection((host, int(port)))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    reqs = [
        f"GET {p} HTTP/1.1\r\nHost: {addr}\r\n{header}\r\n\r\n".encode() for p in paths
    ]
    buf = b""
    for i in range(count):
        s.sendall(reqs[i % len(reqs)])
        while b"\r\n\r\n" not in buf:
            chunk = s.recv(65536)
            if not chunk:
                errors.append("connection closed")
                return
            buf += chunk
        head, buf = buf.split(b"\r\n\r\n", 1)
        lines = head.split(b"\r\n")
        if not lines[0].startswith(b"HTTP/1.1 200"):
            errors.append(lines[0].decode(errors="replace"))
            return
        length = 0
        for line in lines[1:]:
            k, _, v = line.partition(b":")
            if k.strip().lower() == b"content-length":
                length = int(v)
        while len(buf) < length:
            chunk = s.recv(65536)
            if not chunk:
                errors.append("connection closed in a body")
                return
            buf += chunk
        if length == 0:
            errors.append("empty body")
            return
        buf = buf[length:]
    s.close()


def main():
    addr, n, conns, header = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    paths = sys.argv[5:]
    errors = []
    threads = [
        threading.Thread(target=run, args=(addr, n // conns, header, paths, errors))
        for _ in range(conns)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        sys.exit(f"keepalive: {errors[0]}")


if __name__ == "__main__":
    main()
