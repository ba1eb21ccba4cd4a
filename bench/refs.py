#!/usr/bin/env python3
"""--resolve-refs start-up benchmark: wall time and AWS requests of
`ecs-secrets exec --resolve-refs -- true` with N references in the environment (half SSM
`ssm:/…`, half Secrets Manager `secretsmanager:…`), alone and next to a 200-secret path,
and the 200-secret path alone for comparison. Every request passes a proxy that adds
--latency-ms (like a cross-AZ call) and counts it.

Usage: bench/refs.sh [--sizes 10,50,200] [--latency-ms 10] [--runs 5]
"""
import argparse
import concurrent.futures as cf
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from bench import BIN, ROOT, base_env, measure, seed_ssm, start_moto  # noqa: E402
from proxy import Proxy  # noqa: E402


def boto(moto_env, service):
    import boto3

    return boto3.client(service, endpoint_url=moto_env["AWS_ENDPOINT_URL"], region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def seed_refs(moto_env, n):
    """n/2 parameters and n/2 secrets; returns the environment holding their references."""
    ssm, sm = boto(moto_env, "ssm"), boto(moto_env, "secretsmanager")
    half = n // 2
    refs = {}

    def put_p(i):
        ssm.put_parameter(Name=f"/bench/refs/n{n}/p{i:04d}", Value=f"value-{i:04d}-" + "x" * 24,
                          Type="SecureString", Overwrite=True)

    def put_s(i):
        sm.create_secret(Name=f"bench/refs/n{n}/s{i:04d}", SecretString=f"value-{i:04d}-" + "x" * 24)

    with cf.ThreadPoolExecutor(8) as ex:
        list(ex.map(put_p, range(half)))
        list(ex.map(put_s, range(n - half)))
    for i in range(half):
        refs[f"REF_P{i:04d}"] = f"ssm:/bench/refs/n{n}/p{i:04d}"
    for i in range(n - half):
        refs[f"REF_S{i:04d}"] = f"secretsmanager:bench/refs/n{n}/s{i:04d}"
    return refs, -(-half // 10) + -(-(n - half) // 20)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="10,50,200")
    ap.add_argument("--latency-ms", type=float, default=10.0)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--out", default=os.path.join(ROOT, "bench/out"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    if not os.path.exists(BIN):
        sys.exit(f"{BIN} missing: run bench/refs.sh (it builds the release binary)")
    moto, port = start_moto(args.out)
    rows = []
    try:
        moto_env = base_env(f"http://127.0.0.1:{port}")
        proxy = Proxy(port, args.latency_ms)
        penv = base_env(proxy.endpoint)
        path = "/bench/refs/path200"
        seed_ssm(moto_env, path, 200)
        r = measure([BIN, "exec", "--path", path, "--", "true"], penv, proxy, args.runs)
        rows.append(("200-secret path alone", 0, r, 20))
        for n in [int(s) for s in args.sizes.split(",")]:
            refs, floor = seed_refs(moto_env, n)
            env = dict(penv, **refs)
            r = measure([BIN, "exec", "--resolve-refs", "--", "true"], env, proxy, args.runs)
            rows.append(("references alone", n, r, floor))
            r = measure([BIN, "exec", "--resolve-refs", "--path", path, "--", "true"], env, proxy,
                        args.runs)
            rows.append(("references + 200-secret path", n, r, floor + 20))
        proxy.stop()
    finally:
        moto.kill()
    print(f"\n--resolve-refs start-up, {args.latency_ms:.0f} ms added per request, median of "
          f"{args.runs} runs (references: half ssm:/, half secretsmanager:):\n")
    print("| case | references | wall time (ms) | requests | request floor | peak RSS (MiB) |")
    print("|---|---:|---:|---:|---:|---:|")
    for case, n, r, floor in rows:
        print(f"| {case} | {n} | {r['wall_ms']:.1f} | {r['requests']} | {floor} | "
              f"{r['rss_kib'] / 1024:.1f} |")


if __name__ == "__main__":
    main()
