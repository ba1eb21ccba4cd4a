"""A latency-adding, request-counting HTTP/1.1 forwarding proxy for the benchmarks.

Every request waits `latency_ms` (like a cross-AZ call) before it is forwarded to the
upstream (moto); requests are counted by operation (X-Amz-Target, or Action= for query
protocols). Loopback only.
"""
import collections
import http.client
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "upgrade", "te", "trailer"}


class Proxy:
    def __init__(self, upstream_port, latency_ms=10.0):
        self.upstream_port = upstream_port
        self.latency = latency_ms / 1000.0
        self.lock = threading.Lock()
        self.counts = collections.Counter()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def setup(self):
                super().setup()
                # The response goes out as two writes (headers, then body). With Nagle on, the
                # body waits for the client's delayed ACK of the headers: ~25-40 ms added to
                # every request on top of the intended latency.
                self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def _handle(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                op = self.headers.get("X-Amz-Target")
                if not op and body:
                    op = parse_qs(body.decode("latin-1")).get("Action", ["?"])[0]
                with proxy.lock:
                    proxy.counts[(op or self.command + " " + self.path).split(".")[-1]] += 1
                if proxy.latency:
                    time.sleep(proxy.latency)
                conn = getattr(self.server.local, "conn", None)
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", proxy.upstream_port, timeout=60)
                    self.server.local.conn = conn
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
                try:
                    conn.request(self.command, self.path, body=body, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                except (http.client.HTTPException, OSError):
                    conn.close()
                    self.server.local.conn = None
                    conn = http.client.HTTPConnection("127.0.0.1", proxy.upstream_port, timeout=60)
                    self.server.local.conn = conn
                    conn.request(self.command, self.path, body=body, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in HOP and k.lower() != "content-length":
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.local = threading.local()
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def endpoint(self):
        return f"http://127.0.0.1:{self.port}"

    def reset(self):
        with self.lock:
            self.counts.clear()

    def snapshot(self):
        with self.lock:
            return dict(self.counts)

    def stop(self):
        self.server.shutdown()
