"""A quota-enforcing loopback proxy in front of moto, for bench/fleet.py.

Like AWS's account-wide request quotas: one token bucket per operation (rate per second,
a burst of one second's worth), shared by every client. A request that finds its bucket
empty is answered by the proxy itself, exactly as AWS answers it — HTTP 400 with an awsJson
body `{"__type":"ThrottlingException","message":"Rate exceeded"}` (no x-amzn-ErrorType
header: the client must read the body, as with SSM) — and never reaches moto. Every
request waits `latency_ms` first (a cross-AZ call).

moto handles ~50 requests/s on two cores, below the quotas being measured, so read
operations (GetParametersByPath, Query, Decrypt, GetCallerIdentity) are answered from a
cache of moto's own answers, keyed by operation and request body (JSON keys sorted): the first request of a
kind goes to moto, identical ones (also those arriving while it is on its way) get moto's
answer replayed. Tasks reading the same
path send identical requests, so moto is asked once per page; the proxy, not moto, is
what the tasks contend for — as they would contend for the quota, not for AWS's servers.

asyncio, one thread: hundreds of keep-alive connections cost nothing. Loopback only.
"""
import asyncio
import collections
import json
import threading
import time

# Operation -> requests per second. Defaults: AWS's documented defaults where they bind.
DEFAULT_QUOTAS = {
    "GetParametersByPath": 40.0,  # SSM, per account and region
    "GetParameters": 40.0,
    "GetParameter": 40.0,
    "Decrypt": 10000.0,  # KMS cryptographic operations (shared)
    "Query": 3000.0,  # DynamoDB on-demand: far more than we need
}
CACHED = {"GetParametersByPath", "Query", "Decrypt", "GetCallerIdentity"}


def canonical(body):
    """The request body with JSON object keys sorted: the SDK serializes maps (e.g. DynamoDB's
    ExpressionAttributeNames) in a random order per process."""
    try:
        return json.dumps(json.loads(body), sort_keys=True).encode()
    except ValueError:
        return body


class Bucket:
    def __init__(self, rate):
        self.rate = rate
        self.capacity = max(1.0, rate)
        self.tokens = self.capacity
        self.t = time.monotonic()

    def take(self):
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.t) * self.rate)
        self.t = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class QuotaProxy:
    def __init__(self, upstream_port, latency_ms=10.0, quotas=None):
        self.upstream_port = upstream_port
        self.latency = latency_ms / 1000.0
        self.quotas = dict(DEFAULT_QUOTAS if quotas is None else quotas)
        self.lock = threading.Lock()
        self.reset()
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        self.ready.wait()

    def reset(self):
        with self.lock:
            self.buckets = {op: Bucket(r) for op, r in self.quotas.items()}
            self.requests = collections.Counter()
            self.throttled = collections.Counter()
            self.upstream = 0
            self.cache = {}

    def snapshot(self):
        with self.lock:
            return {
                "requests": dict(self.requests),
                "throttled": dict(self.throttled),
                "upstream": self.upstream,
            }

    @property
    def endpoint(self):
        return f"http://127.0.0.1:{self.port}"

    def _run(self):
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(
            asyncio.start_server(self._serve, "127.0.0.1", 0, backlog=1024)
        )
        self.port = server.sockets[0].getsockname()[1]
        self.ready.set()
        self.loop.run_forever()

    async def _serve(self, reader, writer):
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        k, v = line.split(":", 1)
                        headers[k.strip().lower()] = v.strip()
                n = int(headers.get("content-length", "0"))
                body = await reader.readexactly(n) if n else b""
                op = headers.get("x-amz-target", "").split(".")[-1]
                if not op and b"Action=" in body:
                    op = body.split(b"Action=")[1].split(b"&")[0].decode()
                op = op or f"{method} {target}"
                with self.lock:
                    self.requests[op] += 1
                    bucket = self.buckets.get(op)
                    ok = bucket.take() if bucket else True
                    if not ok:
                        self.throttled[op] += 1
                if self.latency:
                    await asyncio.sleep(self.latency)
                if ok:
                    status, rheaders, rbody = await self._answer(op, method, target, headers, body)
                else:
                    status = "400 Bad Request"
                    rheaders = [("Content-Type", headers.get("content-type", "application/x-amz-json-1.1")),
                                ("x-amzn-RequestId", "00000000-0000-0000-0000-quota0proxy0")]
                    rbody = json.dumps({"__type": "ThrottlingException", "message": "Rate exceeded"}).encode()
                out = [f"HTTP/1.1 {status}"]
                out += [f"{k}: {v}" for k, v in rheaders]
                out.append(f"Content-Length: {len(rbody)}")
                writer.write(("\r\n".join(out) + "\r\n\r\n").encode("latin-1") + rbody)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    async def _answer(self, op, method, target, headers, body):
        key = (op, canonical(body)) if op in CACHED else None
        if key is None:
            return await self._forward(method, target, headers, body)
        with self.lock:
            hit = self.cache.get(key)
            if hit is None:
                # One request goes to moto; identical ones wait for its answer.
                hit = self.cache[key] = self.loop.create_future()
                mine = True
            else:
                mine = False
        if not mine:
            return await asyncio.shield(hit)
        try:
            answer = await self._forward(method, target, headers, body)
        except Exception as e:
            with self.lock:
                del self.cache[key]
            hit.set_exception(e)
            raise
        if not answer[0].startswith("200"):
            with self.lock:
                del self.cache[key]
        hit.set_result(answer)
        return answer

    async def _forward(self, method, target, headers, body):
        r, w = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        fwd = {k: v for k, v in headers.items() if k not in ("connection", "keep-alive", "expect")}
        fwd["connection"] = "close"
        fwd["content-length"] = str(len(body))
        req = f"{method} {target} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fwd.items()) + "\r\n"
        w.write(req.encode("latin-1") + body)
        await w.drain()
        head = (await r.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        status = head[0].split(" ", 1)[1]
        rheaders = []
        length = None
        chunked = False
        for line in head[1:]:
            if ":" not in line:
                continue
            k, v = line.split(":", 1)
            kl = k.strip().lower()
            if kl == "content-length":
                length = int(v.strip())
            elif kl == "transfer-encoding":
                chunked = "chunked" in v.lower()
            elif kl not in ("connection", "keep-alive", "date", "server"):
                rheaders.append((k.strip(), v.strip()))
        if chunked:
            rbody = b""
            while True:
                size = int((await r.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    await r.readuntil(b"\r\n")
                    break
                rbody += await r.readexactly(size)
                await r.readexactly(2)
        elif length is not None:
            rbody = await r.readexactly(length)
        else:
            rbody = await r.read()
        w.close()
        with self.lock:
            self.upstream += 1
        return (status, rheaders, rbody)

    def stop(self):
        self.loop.call_soon_threadsafe(self.loop.stop)
