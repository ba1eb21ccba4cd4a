#!/usr/bin/env python3
"""--template start-up benchmark: wall time and peak RSS of
`ecs-secrets exec --path P [--files DIR] [--template SRC:DEST ×T] -- true` with T templates of
P placeholders each (filters cycling through none, json, yaml, xml, url, shell, base64) over a
path of 50 secrets, against the same start with no template and with --files only. Direct to
moto (no added latency), so the figures are ecs-secrets' own cost.

Usage: bench/templates.sh [--templates 10] [--placeholders 50] [--runs 20]
"""
import argparse
import os
import shutil
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
from bench import BIN, base_env, seed_ssm, start_moto, timed  # noqa: E402

FILTERS = ["", " | json", " | yaml", " | xml", " | url", " | shell", " | base64"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--templates", type=int, default=10)
    ap.add_argument("--placeholders", type=int, default=50)
    ap.add_argument("--secrets", type=int, default=50)
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args()
    if not os.path.exists(BIN):
        sys.exit(f"{BIN} missing: run bench/templates.sh (it builds the release binary)")
    src = tempfile.mkdtemp(prefix="ecs-secrets-bench-tmpl-")
    out = tempfile.mkdtemp(prefix="ecs-secrets-bench-tmpl-", dir="/dev/shm")
    moto, port = start_moto(src)
    try:
        env = base_env(f"http://127.0.0.1:{port}")
        path = "/bench/templates"
        seed_ssm(env, path, args.secrets)
        flags = []
        for t in range(args.templates):
            lines = [f"key_{k} = {{{{ SECRET_{k % args.secrets:04d}{FILTERS[(t + k) % len(FILTERS)]} }}}}"
                     for k in range(args.placeholders)]
            p = os.path.join(src, f"t{t}.tmpl")
            with open(p, "w") as f:
                f.write("# rendered by ecs-secrets\n" + "\n".join(lines) + "\n")
            flags += ["--template", f"{p}:{out}/rendered/t{t}.conf"]
        cases = [
            ("no template", [BIN, "exec", "--path", path, "--", "true"]),
            ("--files only", [BIN, "exec", "--path", path, "--files", f"{out}/files", "--", "true"]),
            (f"{args.templates} templates x {args.placeholders} placeholders",
             [BIN, "exec", "--path", path] + flags + ["--", "true"]),
        ]
        size = os.path.getsize(BIN)
        print(f"binary: {size / 1048576:.2f} MiB ({size} bytes)")
        print(f"\n{args.secrets} secrets under {path}, direct to moto, median of {args.runs} runs:\n")
        print("| start | wall time (ms) | peak RSS (MiB) |")
        print("|---|---:|---:|")
        base = None
        for name, cmd in cases:
            timed(cmd, env)  # warm-up (moto's first answer is slower)
            runs = [timed(cmd, env) for _ in range(args.runs)]
            wall = statistics.median(r[0] for r in runs) * 1000
            rss = max(r[1] for r in runs) / 1024
            base = wall if base is None else base
            print(f"| {name} | {wall:.1f} | {rss:.1f} |")
        rendered = os.path.join(out, "rendered", "t0.conf")
        print(f"\n(each rendered file: {os.path.getsize(rendered)} bytes; {args.templates * args.placeholders} "
              f"placeholders in all)")
    finally:
        moto.kill()
        shutil.rmtree(src, ignore_errors=True)
        shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
