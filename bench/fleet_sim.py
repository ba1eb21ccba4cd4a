#!/usr/bin/env python3
"""A simulation of a fleet starting at once, for choosing a retry policy (README, "Starting
many tasks at once"). bench/fleet.sh measures the real binary; this explores policies the
binary does not have, in seconds instead of minutes.

The model is bench/quota_proxy.py's: one token bucket (40 GetParametersByPath per second, a
burst of one second's worth) shared by K tasks that start within half a second; every
request takes 15 ms; a task needs `pages` answers one after the other (the next page is asked for
as soon as the previous one arrives) and retries a throttled request after a wait its
policy draws. It reproduces the measured figures of 0fdc7aa (about 135 of 300 started,
5-6 throttled per useful request) and of the full-jitter policy before this one (K = 100:
1.2-1.3 x the floor; K = 300: 1.1 x, 1.4 throttled per useful request).

    python3 bench/fleet_sim.py              # every policy, K = 100 and 300, 100 seeds
    python3 bench/fleet_sim.py --seeds 400 --k 20,100,300 --pages 1 --spawn 1 --latency-ms 12

Printed per policy and K: tasks started (fewest over the seeds), the last start over the
floor (mean, 90th percentile, worst), throttled requests per useful one (worst).
"""
import argparse
import heapq
import random

RATE = 40.0  # tokens per second, and the bucket's size
LATENCY = 0.015  # a request's round trip: the proxy's 10 ms and the rest
SPAWN = 0.5  # the K tasks start within this many seconds (bench/fleet.py: about 0.3 s)
DEADLINE = 90.0


def simulate(k, policy, pages=6, seed=0):
    rnd = random.Random(seed)
    tokens, last, events = RATE, 0.0, []
    tasks = [dict(page=0, throttles=0) for _ in range(k)]
    for i in range(k):
        heapq.heappush(events, (rnd.uniform(0, SPAWN), i))
    active = k
    throttled, done = 0, []
    while events:
        t, i = heapq.heappop(events)
        task = tasks[i]
        if t > DEADLINE:
            continue
        arrive = t + LATENCY / 2
        tokens = min(RATE, tokens + (arrive - last) * RATE)
        last = arrive
        if tokens >= 1:
            tokens -= 1
            task["page"] += 1
            policy.answered(task, t)
            if task["page"] == pages:
                done.append(t + LATENCY)
                active -= 1
            else:
                heapq.heappush(events, (t + LATENCY, i))
            continue
        throttled += 1
        task["throttles"] += 1
        wait = policy.throttled(task, t, k, active, rnd)
        if wait is not None:
            heapq.heappush(events, (t + LATENCY + wait, i))
    floor = k * pages / RATE
    return len(done), (max(done) / floor if done else 0.0), throttled / max(1, len(done) * pages)


class AttemptLimited:
    """0fdc7aa: the SDK's standard schedule per request (100 ms doubling to 5 s, full
    jitter), giving up after 10 attempts whatever the deadline."""
    name = "0fdc7aa: 0.1 s doubling to 5 s, 10 attempts"

    def __init__(self, limit=10):
        self.limit = limit

    def answered(self, task, t):
        task["n"] = 0

    def throttled(self, task, t, k, active, rnd):
        task["n"] = task.get("n", 0) + 1
        if self.limit and task["n"] >= self.limit:
            return None
        return rnd.random() * min(5.0, 0.1 * 2 ** (task["n"] - 1))


class StandardToDeadline(AttemptLimited):
    name = "SDK standard schedule, deadline only"

    def __init__(self):
        super().__init__(limit=0)


class ProcessWindow:
    """One window per process, 3 s doubling on every throttle up to the cap, halving on
    every answer (closing below 3 s); the wait is drawn from [low x W, W): low = 0 is full
    jitter, low = 0.5 what src/aws/retry.rs does."""

    def __init__(self, cap=6.0, low=0.5, first=3.0):
        self.cap, self.low, self.first = cap, low, first
        jitter = "full jitter" if low == 0 else f"wait {low:g}-1 x window"
        self.name = f"process window {first:g} s doubling to {cap:g} s, {jitter}"
        if (cap, low) == (6.0, 0.5):
            self.name += " (ecs-secrets)"
        elif (cap, low) == (10.0, 0.0):
            self.name += " (ecs-secrets before)"

    def answered(self, task, t):
        task["w"] = task.get("w", 0.0) / 2
        if task["w"] < self.first:
            task["w"] = 0.0

    def throttled(self, task, t, k, active, rnd):
        task["w"] = min(self.cap, max(self.first, task.get("w", 0.0) * 2))
        return (self.low + (1 - self.low) * rnd.random()) * task["w"]


class Paced(ProcessWindow):
    """The window doubles at most once per window's length of time (slow escalation)."""

    def __init__(self):
        super().__init__(cap=10.0, low=0.0)
        self.name = "window doubling at most once per window, full jitter"

    def throttled(self, task, t, k, active, rnd):
        w = task.get("w", 0.0)
        if w == 0:
            task["w"], task["grown"] = self.first, t
        elif t - task["grown"] >= w:
            task["w"], task["grown"] = min(self.cap, w * 2), t
        return rnd.random() * task["w"]


class Estimated:
    """The window from an estimate of how saturated the quota is: p = the share of this
    process's attempts that were throttled (with a prior), window = 8 s x p / (1 - p) within
    [1, 10] s, the first one at most 3 s."""
    name = "window from the throttled share (estimate)"

    def answered(self, task, t):
        task["att"] = task.get("att", 0) + 1

    def throttled(self, task, t, k, active, rnd):
        task["att"] = task.get("att", 0) + 1
        p = (task["throttles"] + 0.8) / (task["att"] + 4)
        w = min(10.0, max(1.0, 8 * p / (1 - p)))
        if task["throttles"] == 1:
            w = min(w, 3.0)
        return rnd.random() * w


class Oracle:
    """Not buildable: every task knows K (or how many tasks are still starting) and uses
    the same window, alpha x that / quota. Shows what the missing information is worth."""

    def __init__(self, alpha, active):
        self.alpha, self.active = alpha, active
        self.name = (f"oracle: {alpha:g} x tasks still starting / quota" if active
                     else f"oracle: {alpha:g} x K / quota")

    def answered(self, task, t):
        pass

    def throttled(self, task, t, k, active, rnd):
        return rnd.random() * self.alpha * (active if self.active else k) / RATE


def main():
    global SPAWN, LATENCY
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=100)
    ap.add_argument("--k", default="100,300")
    ap.add_argument("--pages", type=int, default=6)
    ap.add_argument("--spawn", type=float, default=SPAWN)
    ap.add_argument("--latency-ms", type=float, default=LATENCY * 1000)
    args = ap.parse_args()
    SPAWN, LATENCY = args.spawn, args.latency_ms / 1000
    ks = [int(k) for k in args.k.split(",")]
    policies = [AttemptLimited(), StandardToDeadline(), ProcessWindow(cap=10.0, low=0.0),
                ProcessWindow(cap=6.0, low=0.0), ProcessWindow(cap=10.0), ProcessWindow(cap=7.0),
                ProcessWindow(), ProcessWindow(low=0.33), Paced(), Estimated(),
                Oracle(1.5, False), Oracle(2.0, True)]
    print(f"{args.pages} pages per task, {RATE:.0f} requests/s, tasks starting within "
          f"{SPAWN:g} s, {LATENCY * 1000:g} ms a request, {args.seeds} seeds; "
          "floor = K x pages / quota\n")
    print("| policy | K | started (fewest) | last start / floor: mean | 90th pct | worst | "
          "throttled per useful (worst) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for p in policies:
        for k in ks:
            runs = [simulate(k, p, args.pages, seed) for seed in range(args.seeds)]
            started = min(r[0] for r in runs)
            ratios = sorted(r[1] for r in runs)
            mean = sum(ratios) / len(ratios)
            p90 = ratios[int(0.9 * (len(ratios) - 1))]
            worst_thr = max(r[2] for r in runs)
            full = started == k
            print(f"| {p.name} | {k} | {started} | {mean:.2f} | {p90:.2f} | {ratios[-1]:.2f} | "
                  f"{worst_thr:.2f} |" if full else
                  f"| {p.name} | {k} | {started} | — | — | — | {worst_thr:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
