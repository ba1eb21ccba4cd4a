#!/usr/bin/env python3
"""ecs-secrets start-up benchmark: prints a table and writes results.json + startup.png.

For N secrets under one path, it measures what a container start costs:
wall time of `ecs-secrets exec --path P -- true`, the AWS requests it makes (counted by a
proxy that adds --latency-ms to every request, like a cross-AZ call), and peak RSS — for the
ssm, dynamodb and secretsmanager backends, and for credstash (`credstash getall`, the peer) on the same moto.

Usage: bench/run.sh [--sizes 10,50,200,1000] [--latency-ms 10] [--runs 5]
"""
import argparse
import concurrent.futures as cf
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
from proxy import Proxy  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target/x86_64-unknown-linux-gnu/release/ecs-secrets")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_moto(logdir):
    port = free_port()
    log = open(os.path.join(logdir, "moto.log"), "w")
    proc = subprocess.Popen(["moto_server", "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=log)
    for _ in range(300):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/moto-api/", timeout=1)
            return proc, port
        except Exception:
            time.sleep(0.1)
    proc.kill()
    sys.exit("moto_server did not start; see " + log.name)


def base_env(endpoint):
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": "/nonexistent",
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
    }
    return env


RSS_FILE = "/tmp/ecs-secrets-bench-rss"


def timed(cmd, env):
    """Run cmd under GNU time; return (seconds, peak RSS in KiB, returncode).

    The peak RSS comes from GNU time, not from os.wait4 here: a child forked from this
    (large) Python process would report Python's RSS as its own peak. ru_maxrss survives
    execve, so `ecs-secrets exec -- true` reports ecs-secrets' own peak.
    """
    t0 = time.perf_counter()
    p = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", RSS_FILE] + cmd, env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    dt = time.perf_counter() - t0
    if p.returncode != 0:
        raise RuntimeError(f"{cmd[:4]} failed ({p.returncode}): {p.stderr.decode(errors='replace')[-800:]}")
    with open(RSS_FILE) as f:
        rss = int(f.read().split()[-1])
    return dt, rss, p.returncode


def seed_ssm(moto_env, path, n):
    import boto3

    ssm = boto3.client("ssm", endpoint_url=moto_env["AWS_ENDPOINT_URL"], region_name="us-east-1",
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    def put(i):
        ssm.put_parameter(Name=f"{path}/SECRET_{i:04d}", Value=f"value-{i:04d}-" + "x" * 24,
                          Type="SecureString", Overwrite=True)
    with cf.ThreadPoolExecutor(8) as ex:
        list(ex.map(put, range(n)))


def seed_secretsmanager(moto_env, path, n):
    import boto3

    sm = boto3.client("secretsmanager", endpoint_url=moto_env["AWS_ENDPOINT_URL"],
                      region_name="us-east-1", aws_access_key_id="testing",
                      aws_secret_access_key="testing")
    prefix = path.lstrip("/")
    def put(i):
        sm.create_secret(Name=f"{prefix}/SECRET_{i:04d}", SecretString=f"value-{i:04d}-" + "x" * 24)
    with cf.ThreadPoolExecutor(8) as ex:
        list(ex.map(put, range(n)))


def seed_dynamodb(moto_env, path, n, table):
    env = dict(moto_env)
    def put(i):
        subprocess.run([BIN, "create", "--backend", "dynamodb", "--table", table, "--path", path,
                        "--name", f"SECRET_{i:04d}", "--payload-stdin"],
                       input=(f"value-{i:04d}-" + "x" * 24).encode(), env=env, check=True,
                       stdout=subprocess.DEVNULL)
    with cf.ThreadPoolExecutor(4) as ex:
        list(ex.map(put, range(n)))


def seed_credstash(moto_env, table, n):
    os.environ.update({k: v for k, v in moto_env.items() if k.startswith("AWS_")})
    import credstash

    def put(i):
        credstash.putSecret(f"SECRET_{i:04d}", f"value-{i:04d}-" + "x" * 24, version="1",
                            kms_key="alias/credstash", region="us-east-1", table=table)
    with cf.ThreadPoolExecutor(8) as ex:
        list(ex.map(put, range(n)))


def kms_alias(moto_env, alias):
    import boto3

    kms = boto3.client("kms", endpoint_url=moto_env["AWS_ENDPOINT_URL"], region_name="us-east-1",
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    if any(a["AliasName"] == alias for a in kms.list_aliases()["Aliases"]):
        return
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName=alias, TargetKeyId=key)


def measure(cmd, env, proxy, runs):
    walls, rss, reqs = [], [], None
    for _ in range(runs):
        proxy.reset()
        dt, maxrss, _ = timed(cmd, env)
        walls.append(dt)
        rss.append(maxrss)
        reqs = proxy.snapshot()
    return {"wall_ms": statistics.median(walls) * 1000, "rss_kib": max(rss),
            "requests": sum(reqs.values()), "ops": reqs}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="10,50,200,1000")
    ap.add_argument("--latency-ms", type=float, default=10.0)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--backends", default="ssm,dynamodb,secretsmanager,credstash")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench/out"))
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    backends = args.backends.split(",")
    args.out = os.path.abspath(args.out)
    os.makedirs(args.out, exist_ok=True)
    os.chdir(args.out)  # credstash writes credstash.log into its working directory
    if not os.path.exists(BIN):
        sys.exit(f"{BIN} missing: run bench/run.sh (it builds the release binary)")

    moto, port = start_moto(args.out)
    try:
        moto_env = base_env(f"http://127.0.0.1:{port}")
        proxy = Proxy(port, args.latency_ms)
        penv = base_env(proxy.endpoint)
        results = {"latency_ms": args.latency_ms, "runs": args.runs, "rows": []}

        size = os.path.getsize(BIN)
        filetype = subprocess.run(["file", "-b", BIN], capture_output=True, text=True).stdout.strip()
        results["binary"] = {"bytes": size, "file": filetype}

        # Start-up overhead with zero secrets, no added latency: exec vs `true` alone.
        direct = base_env(moto_env["AWS_ENDPOINT_URL"])
        t_true = statistics.median(timed(["true"], direct)[0] for _ in range(20))
        t_zero = statistics.median(
            timed([BIN, "exec", "--path", "/bench/empty", "--", "true"], direct)[0] for _ in range(20))
        results["zero_secrets_overhead_ms"] = (t_zero - t_true) * 1000
        results["version_ms"] = statistics.median(timed([BIN, "--version"], direct)[0] for _ in range(20)) * 1000

        if "dynamodb" in backends:
            subprocess.run([BIN, "setup", "--backend", "dynamodb", "--table", "bench-ecs-secrets",
                            "--path", "/bench"], env=moto_env, check=True, stdout=subprocess.DEVNULL)
        if "credstash" in backends:
            kms_alias(moto_env, "alias/credstash")
            subprocess.run(["credstash", "-r", "us-east-1", "-t", "bench-credstash", "setup"],
                           env=moto_env, check=True, capture_output=True)

        for n in sizes:
            for b in backends:
                path = f"/bench/{b}/n{n}"
                t0 = time.time()
                if b == "ssm":
                    seed_ssm(moto_env, path, n)
                    cmd = [BIN, "exec", "--path", path, "--", "true"]
                elif b == "secretsmanager":
                    seed_secretsmanager(moto_env, path, n)
                    cmd = [BIN, "exec", "--backend", "secretsmanager", "--path", path, "--", "true"]
                elif b == "dynamodb":
                    seed_dynamodb(moto_env, path, n, "bench-ecs-secrets")
                    cmd = [BIN, "exec", "--backend", "dynamodb", "--table", "bench-ecs-secrets",
                           "--path", path, "--", "true"]
                else:
                    table = f"bench-credstash-{n}"
                    subprocess.run(["credstash", "-r", "us-east-1", "-t", table, "setup"],
                                   env=moto_env, check=True, capture_output=True)
                    seed_credstash(moto_env, table, n)
                    cmd = ["credstash", "-r", "us-east-1", "-t", table, "getall"]
                seeded = time.time() - t0
                r = measure(cmd, penv, proxy, args.runs if b != "credstash" or n <= 200 else 1)
                floor = {"ssm": -(-n // 10), "dynamodb": 2, "secretsmanager": -(-n // 20),
                         "credstash": 1 + 2 * n}[b]
                r.update({"backend": b, "n": n, "floor": floor})
                results["rows"].append(r)
                print(f"  {b:9} N={n:5}  {r['wall_ms']:9.1f} ms  {r['requests']:5} req "
                      f"(floor {floor})  {r['rss_kib']/1024:6.1f} MiB  [seeded in {seeded:.0f}s]",
                      file=sys.stderr, flush=True)
        proxy.stop()
    finally:
        moto.kill()

    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(results, f, indent=2)
    report(results, args.out)


def report(results, out):
    b = results["binary"]
    print(f"binary: {b['bytes']/1048576:.2f} MiB ({b['bytes']} bytes); {b['file'].split(',')[0]}, "
          f"{'statically linked' if 'static' in b['file'] else 'NOT STATIC'}")
    print(f"start-up overhead with zero secrets (exec -- true vs true, direct to moto): "
          f"{results['zero_secrets_overhead_ms']:.1f} ms; `--version`: {results['version_ms']:.1f} ms")
    print(f"\nstart-up with N secrets, {results['latency_ms']:.0f} ms added per request, "
          f"median of {results['runs']} runs:\n")
    print("| backend | N | wall time (ms) | requests | request floor | peak RSS (MiB) |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in results["rows"]:
        print(f"| {r['backend']} | {r['n']} | {r['wall_ms']:.1f} | {r['requests']} | {r['floor']} | "
              f"{r['rss_kib']/1024:.1f} |")
    by = {}
    for r in results["rows"]:
        by.setdefault(r["n"], {})[r["backend"]] = r
    for n, row in sorted(by.items()):
        if "dynamodb" in row and "credstash" in row:
            print(f"\nN={n}: dynamodb is {row['credstash']['wall_ms'] / row['dynamodb']['wall_ms']:.1f}x "
                  f"faster than credstash", end="")
    print()
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(matplotlib not installed: no plot)", file=sys.stderr)
        return
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for backend, style in [("ssm", "o-"), ("dynamodb", "s-"), ("secretsmanager", "d-"),
                           ("credstash", "^-")]:
        rows = [r for r in results["rows"] if r["backend"] == backend]
        if not rows:
            continue
        ns = [r["n"] for r in rows]
        a1.plot(ns, [r["wall_ms"] for r in rows], style, label=backend)
        a2.plot(ns, [r["requests"] for r in rows], style, label=backend)
    for a, title, unit in [(a1, "start-up wall time", "ms"), (a2, "AWS requests per start", "requests")]:
        a.set_xscale("log")
        a.set_yscale("log")
        a.set_xlabel("secrets under the path")
        a.set_ylabel(unit)
        a.set_title(f"{title} ({results['latency_ms']:.0f} ms per request)")
        a.grid(True, which="both", alpha=0.3)
        a.legend()
    fig.tight_layout()
    png = os.path.join(out, "startup.png")
    fig.savefig(png, dpi=110)
    print(f"plot: {png}", file=sys.stderr)


if __name__ == "__main__":
    main()
