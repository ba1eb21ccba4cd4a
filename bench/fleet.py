#!/usr/bin/env python3
"""A fleet starting at once: K tasks `ecs-secrets exec --path P -- app`, N secrets each,
against a proxy that enforces AWS-like quotas (bench/quota_proxy.py: 40 GetParametersByPath
per second for the whole account, HTTP 400 ThrottlingException beyond, +10 ms a request).

For each backend, K and --timeout it prints: started (with every secret, exact), failed
(the app never ran: exit non-zero, no dump), started-with-partial (the app ran with a
missing or wrong secret: must be 0), the time of the last start, the floor (K x pages /
quota: no policy can start the last task earlier), requests and throttled requests per
useful one, and the error the failed ones printed. Writes fleet.json and fleet.png.

Each run is bounded: every task is killed at --timeout + 15 s, whatever it does.

Usage: bench/fleet.sh [--runs ssm:100:90,ssm:300:90,ssm:300:30,dynamodb:300:30] [--n 50]
                      [--bin PATH] [--out DIR]
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
import bench  # noqa: E402
from bench import base_env, start_moto  # noqa: E402
from quota_proxy import QuotaProxy  # noqa: E402

QUOTA = 40.0  # GetParametersByPath per second (SSM's default)
TABLE = "fleet-ecs-secrets"


def value(i):
    return f"value-{i:04d}-" + "x" * 24


def launch(bin_, backend, path, k, timeout, env, outdir):
    """Start K tasks at once; return per-task (rc, start_time_or_None, correct, stderr)."""
    procs = []
    cmd = [bin_, "exec", "--path", path, "--timeout", str(timeout)]
    if backend == "dynamodb":
        cmd[2:2] = ["--backend", "dynamodb", "--table", TABLE]
    t0 = time.time()
    for i in range(k):
        dump = os.path.join(outdir, f"env.{i}")
        err = open(os.path.join(outdir, f"err.{i}"), "wb")
        # The app: record its environment and the moment it started.
        app = ["/bin/sh", "-c", 'env > "$0.tmp" && mv "$0.tmp" "$0"', dump]
        procs.append((subprocess.Popen(cmd + ["--"] + app, env=env, stdout=subprocess.DEVNULL,
                                       stderr=err, start_new_session=True), dump, err))
    hard = t0 + timeout + 15
    results = []
    for p, dump, err in procs:
        try:
            p.wait(timeout=max(0.1, hard - time.time()))
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
        err.close()
        results.append((p, dump))
    out = []
    for p, dump in results:
        stderr = open(dump.replace("env.", "err."), "rb").read().decode(errors="replace")
        started, correct = None, 0
        if os.path.exists(dump):
            started = os.stat(dump).st_mtime - t0
            env_lines = open(dump, "rb").read().decode(errors="replace").split("\n")
            have = dict(line.split("=", 1) for line in env_lines if "=" in line)
            correct = sum(1 for i in range(N) if have.get(f"SECRET_{i:04d}") == value(i))
        out.append((p.returncode, started, correct, stderr))
    return out


def run_one(args, proxy, env, backend, k, timeout, path, pages):
    proxy.reset()
    with tempfile.TemporaryDirectory(prefix="fleet-") as d:
        tasks = launch(args.bin, backend, path, k, timeout, env, d)
    snap = proxy.snapshot()
    started = [t for t in tasks if t[0] == 0 and t[1] is not None and t[2] == N]
    partial = [t for t in tasks if t[1] is not None and t[2] != N]
    failed = [t for t in tasks if t[1] is None]
    reqs = sum(snap["requests"].values())
    thr = sum(snap["throttled"].values())
    useful = reqs - thr
    last = max((t[1] for t in started), default=None)
    floor = k * pages / QUOTA if backend == "ssm" else None
    errors = sorted({t[3].strip().splitlines()[-1] if t[3].strip() else f"exit {t[0]}" for t in failed})
    row = {
        "backend": backend, "k": k, "n": N, "timeout": timeout, "started": len(started),
        "failed": len(failed), "partial": len(partial), "last_start_s": last,
        "floor_s": floor, "requests": reqs, "throttled": thr, "useful": useful,
        "throttled_per_useful": thr / useful if useful else None,
        "requests_per_task": reqs / k, "by_op": snap["requests"], "upstream": snap["upstream"],
        "start_times": sorted(t[1] for t in started), "errors": errors[:3],
        "bin": os.path.basename(args.bin),
    }
    ratio = f"{last / floor:.2f}x floor" if last and floor else ""
    print(f"  {backend:8} K={k:3} --timeout {timeout:3}: started {len(started):3}, failed "
          f"{len(failed):3}, partial {len(partial)}; last start {last or 0:6.1f} s {ratio}; "
          f"{reqs} requests ({reqs / k:.2f}/task), {thr} throttled "
          f"({row['throttled_per_useful'] or 0:.2f} per useful)", file=sys.stderr, flush=True)
    for e in errors[:2]:
        print(f"      error: {e[:400]}", file=sys.stderr)
    return row


def main():
    global N
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", default="ssm:100:90,ssm:300:90,ssm:300:30,dynamodb:100:30,dynamodb:300:30")
    ap.add_argument("--n", type=int, default=50)
    ap.add_argument("--latency-ms", type=float, default=10.0)
    ap.add_argument("--bin", default=bench.BIN)
    ap.add_argument("--out", default=os.path.join(bench.ROOT, "bench/out"))
    ap.add_argument("--plot", default=os.path.join(bench.ROOT, "bench/fleet.png"))
    args = ap.parse_args()
    N = args.n
    bench.BIN = args.bin
    os.makedirs(args.out, exist_ok=True)
    if not os.path.exists(args.bin):
        sys.exit(f"{args.bin} missing: run bench/fleet.sh (it builds the release binary)")
    runs = [(b, int(k), int(t)) for b, k, t in (r.split(":") for r in args.runs.split(","))]

    moto, port = start_moto(args.out)
    try:
        moto_env = base_env(f"http://127.0.0.1:{port}")
        proxy = QuotaProxy(port, args.latency_ms)
        env = base_env(proxy.endpoint)
        paths, pages = {}, {}
        for b in sorted({r[0] for r in runs}):
            path = f"/fleet/{b}/n{N}"
            if b == "ssm":
                bench.seed_ssm(moto_env, path, N)
            else:
                subprocess.run([args.bin, "setup", "--backend", "dynamodb", "--table", TABLE,
                                "--path", path], env=moto_env, check=True, stdout=subprocess.DEVNULL)
                bench.seed_dynamodb(moto_env, path, N, TABLE)
            paths[b] = path
            # One task alone: how many requests a start needs (the pages).
            proxy.reset()
            cmd = [args.bin, "exec", "--path", path, "--", "true"]
            if b == "dynamodb":
                cmd[2:2] = ["--backend", "dynamodb", "--table", TABLE]
            subprocess.run(cmd, env=env, check=True)
            snap = proxy.snapshot()["requests"]
            pages[b] = snap.get("GetParametersByPath", 0) if b == "ssm" else sum(snap.values())
            print(f"{b}: one start = {snap}", file=sys.stderr)
        rows = []
        for b, k, t in runs:
            rows.append(run_one(args, proxy, env, b, k, t, paths[b], pages[b]))
            time.sleep(2)  # let the buckets refill and the processes go
    finally:
        moto.kill()
    results = {"quota_per_s": QUOTA, "latency_ms": args.latency_ms, "n": N, "pages": pages,
               "rows": rows}
    with open(os.path.join(args.out, "fleet.json"), "w") as f:
        json.dump(results, f, indent=1)
    report(results, args.plot)
    sys.stdout.flush()
    sys.stderr.flush()
    # The proxy's thread still holds connections: leave without tearing them down one by one.
    os._exit(0)


def report(results, png):
    print(f"\n{results['n']} secrets per task, {results['quota_per_s']:.0f} GetParametersByPath/s "
          f"for the account, +{results['latency_ms']:.0f} ms per request; ssm start = "
          f"{results['pages'].get('ssm', '?')} pages; floor = K x pages / quota\n")
    print("| backend | K | --timeout | started | failed | partial | last start | floor | "
          "last / floor | requests per task | throttled per useful |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results["rows"]:
        last = f"{r['last_start_s']:.1f} s" if r["last_start_s"] else "—"
        floor = f"{r['floor_s']:.1f} s" if r["floor_s"] else "—"
        ratio = f"{r['last_start_s'] / r['floor_s']:.2f}" if r["floor_s"] and r["last_start_s"] else "—"
        tpu = f"{r['throttled_per_useful']:.2f}" if r["throttled_per_useful"] is not None else "—"
        print(f"| {r['backend']} | {r['k']} | {r['timeout']} | {r['started']} | {r['failed']} | "
              f"{r['partial']} | {last} | {floor} | {ratio} | {r['requests_per_task']:.2f} | {tpu} |")
    for r in results["rows"]:
        for e in r["errors"][:1]:
            print(f"\n{r['backend']} K={r['k']} --timeout {r['timeout']}, a failed task said:\n    {e}")
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(matplotlib not installed: no plot)", file=sys.stderr)
        return
    fig, ax = plt.subplots(figsize=(9, 4.6))
    seen = {}
    for r in results["rows"]:
        ts = r["start_times"]
        label = f"{r['backend']} K={r['k']} --timeout {r['timeout']}"
        seen[label] = seen.get(label, 0) + 1
        if seen[label] > 1:
            label += f" (run {seen[label]})"
        ax.step([0] + ts, list(range(len(ts) + 1)), where="post", label=label)
        if r["floor_s"]:
            ax.plot([r["floor_s"]], [r["k"]], "k|", markersize=14)
    ax.set_xlabel("seconds since the K tasks were launched (| = floor: K x pages / quota)")
    ax.set_ylabel("tasks started (every secret, exact)")
    ax.set_title(f"A fleet starting at once: {results['n']} secrets, "
                 f"{results['quota_per_s']:.0f} GetParametersByPath/s")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    print(f"plot: {png}", file=sys.stderr)


N = 50
if __name__ == "__main__":
    main()
