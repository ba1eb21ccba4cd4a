"""The supervisor's footprint (`exec --refresh`): RSS and CPU while idle, then over 1,000
refresh cycles against moto (one in ten finds a changed value and rewrites the files and
signals CMD), to show nothing grows; then how long a rotation takes to reach the files with
`--refresh 1 --splay 0`. Prints the figures; writes bench/out/refresh.json.

    python3 bench/refresh.py [--bin PATH] [--secrets 20] [--cycles 1000] [--interval 0.1]
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import BIN, ROOT, base_env, start_moto  # noqa: E402
from proxy import Proxy  # noqa: E402

import boto3  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def cpu_secs(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def threads(pid):
    return len(os.listdir(f"/proc/{pid}/task"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=BIN)
    ap.add_argument("--secrets", type=int, default=20)
    ap.add_argument("--cycles", type=int, default=1000)
    ap.add_argument("--interval", type=float, default=0.1)
    ap.add_argument("--idle", type=float, default=10.0, help="seconds of idle measurement")
    ap.add_argument("--pickups", type=int, default=10, help="rotations timed with --refresh 1")
    a = ap.parse_args()
    out_dir = os.path.join(ROOT, "bench", "out")
    os.makedirs(out_dir, exist_ok=True)
    moto, port = start_moto(out_dir)
    proxy = Proxy(port, latency_ms=0)
    # A client closing its connection at the end is not worth a traceback.
    proxy.server.handle_error = lambda *args: None
    ssm = boto3.client(
        "ssm", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
        aws_access_key_id="testing", aws_secret_access_key="testing",
    )
    path = "/bench/refresh"
    for i in range(a.secrets):
        ssm.put_parameter(Name=f"{path}/S{i:03}", Value=f"value-{i:03}-" + "x" * 40,
                          Type="SecureString", Overwrite=True)
    files = tempfile.mkdtemp(prefix="ecs-secrets-bench-", dir="/dev/shm")
    env = base_env(proxy.endpoint)
    results = {}
    procs = []
    try:
        # 1. Idle: a refresh an hour away.
        p = subprocess.Popen(
            [a.bin, "exec", "--path", path, "--refresh", "3600", "--", "sleep", "100000"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(p)
        time.sleep(2)
        c0, t0 = cpu_secs(p.pid), time.time()
        time.sleep(a.idle)
        c1, t1 = cpu_secs(p.pid), time.time()
        results["idle"] = {"rss_kib": rss_kib(p.pid), "cpu_percent": 100 * (c1 - c0) / (t1 - t0),
                           "threads": threads(p.pid), "fds": fds(p.pid)}
        p.send_signal(signal.SIGTERM)
        p.wait(30)

        # 2. Refresh cycles: every `interval`, one value changing about every ten cycles.
        proxy.reset()
        p = subprocess.Popen(
            [a.bin, "exec", "--path", path, "--files", files, "--refresh", str(a.interval),
             "--splay", "0", "--on-change", "signal:SIGHUP", "--",
             "sh", "-c", "trap : HUP; while :; do sleep 1; done"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        procs.append(p)
        stop = threading.Event()
        rotations = [0]

        def rotate():
            while not stop.wait(a.interval * 10):
                rotations[0] += 1
                ssm.put_parameter(Name=f"{path}/S000", Value=f"rotated-{rotations[0]}",
                                  Type="SecureString", Overwrite=True)

        threading.Thread(target=rotate, daemon=True).start()
        samples = []
        start_cpu, start = cpu_secs(p.pid), time.time()
        marks = sorted({m for m in (100, 250, 500, 750) if m < a.cycles} | {a.cycles})
        while marks:
            n = proxy.snapshot().get("GetParametersByPath", 0)
            if n >= marks[0]:
                samples.append({"cycle": n, "rss_kib": rss_kib(p.pid), "fds": fds(p.pid),
                                "threads": threads(p.pid), "secs": round(time.time() - start, 1)})
                marks.pop(0)
            if p.poll() is not None:
                sys.exit("the supervisor exited: " + p.stderr.read().decode())
            time.sleep(0.05)
        cpu = cpu_secs(p.pid) - start_cpu
        stop.set()
        n = proxy.snapshot().get("GetParametersByPath", 0)
        results["cycles"] = {"cycles": n, "rotations": rotations[0], "samples": samples,
                             "cpu_ms_per_cycle": 1000 * cpu / n,
                             "rss_growth_kib_100_to_end": samples[-1]["rss_kib"] - samples[0]["rss_kib"]}
        p.send_signal(signal.SIGTERM)
        p.wait(30)
        err = p.stderr.read().decode()
        results["cycles"]["changes_applied"] = err.count("secrets changed")
        results["cycles"]["failed_refreshes"] = err.count("refresh failed")

        # 3. Pick-up time with --refresh 1 --splay 0: from the write in SSM to the new file.
        p = subprocess.Popen(
            [a.bin, "exec", "--path", path, "--files", files, "--no-env", "--refresh", "1",
             "--splay", "0", "--on-change", "none", "--", "sleep", "100000"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(p)
        time.sleep(2)
        delays = []
        for i in range(a.pickups):
            value = f"pickup-{i}"
            t0 = time.time()
            ssm.put_parameter(Name=f"{path}/S001", Value=value, Type="SecureString", Overwrite=True)
            while True:
                try:
                    with open(os.path.join(files, "S001")) as f:
                        if f.read() == value:
                            break
                except OSError:
                    pass
                if time.time() - t0 > 30:
                    sys.exit("a rotation was not picked up within 30 s")
                time.sleep(0.005)
            delays.append(time.time() - t0)
            time.sleep(0.37 * (i % 3))
        p.send_signal(signal.SIGTERM)
        p.wait(30)
        delays.sort()
        results["pickup"] = {"refresh": 1, "splay": 0, "n": len(delays),
                             "median_s": delays[len(delays) // 2], "max_s": delays[-1]}
    finally:
        for q in procs:
            if q.poll() is None:
                q.kill()
        proxy.stop()
        moto.kill()
        subprocess.run(["rm", "-rf", files])

    i = results["idle"]
    print(f"idle supervisor ({a.secrets} secrets): RSS {i['rss_kib'] / 1024:.1f} MiB, "
          f"CPU {i['cpu_percent']:.3f} %, {i['threads']} threads, {i['fds']} fds")
    c = results["cycles"]
    print(f"{c['cycles']} refresh cycles every {a.interval} s ({c['changes_applied']} with a change "
          f"applied, {c['failed_refreshes']} failed): {c['cpu_ms_per_cycle']:.2f} ms CPU per cycle")
    for s in c["samples"]:
        print(f"  after {s['cycle']:5} cycles ({s['secs']:6} s): RSS {s['rss_kib'] / 1024:.2f} MiB, "
              f"{s['fds']} fds, {s['threads']} threads")
    print(f"RSS growth from cycle {c['samples'][0]['cycle']} to {c['samples'][-1]['cycle']}: "
          f"{c['rss_growth_kib_100_to_end']} KiB")
    k = results["pickup"]
    print(f"rotation picked up (--refresh 1 --splay 0, {k['n']} rotations): median "
          f"{k['median_s']:.2f} s, max {k['max_s']:.2f} s")
    with open(os.path.join(out_dir, "refresh.json"), "w") as f:
        json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
