#!/usr/bin/env python3
"""The burst of issue 14, several systems side by side, warm and interleaved.

    python3 benches/burst_interleaved.py BIN_A,BIN_B,aps ROUNDS
    python3 benches/burst_interleaved.py --every 10 BIN_A,BIN_B,aps ROUNDS

Every system runs at once, each with the 200 jobs of `cargo bench --bench burst`
(`sh -c 'date +%s%N > FILE'`), but on its own minutes: with k systems, system i fires at the
minutes m where m % k == i. So each boundary has one system firing while the others idle,
systems alternate boundary by boundary (the machine's drift hits all alike), and every
measured boundary is warm (each system's first is not counted). `aps` is APScheduler 3.11
(a BackgroundScheduler with its defaults), from the venv `cargo bench --bench burst` makes in
the temp dir (`$TMPDIR/jobs-burst-apscheduler`). `floor` is the machine's floor: a bare
launcher that starts the 200 commands at once at its minutes and records nothing. A path is a `jobctl` binary, run as
`jobctl serve` with its defaults and the ledger in the temp dir.

Per boundary: the scheduler's CPU (the sum over its threads of /proc/PID/task/*/schedstat,
from 1 s before the boundary to 4 s after), its context switches (voluntary and not, same
window), the CPU of its children (cutime + cstime, 10 ms ticks), and the lateness of the first stamp, p50 and p99. At the end, the medians per system.

`--every SECONDS` is the same burst, many times faster to measure: the 200 jobs fire together
every SECONDS (`every:` with a common `start_at` for `jobctl`, an `IntervalTrigger` for
APScheduler) instead of every minute, each system at its own offset in the period, so 14
rounds take a few minutes instead of an hour. The path through the daemon is the same (a
slot, a claim, a process, an end); the issue's figure is the minute's. It also prints p99
over the children's CPU, which takes out most of this machine's drift between rounds.
"""
import os, statistics, signal, subprocess, sys, tempfile, time

JOBS = 200
# APScheduler with its defaults. Its fourth argument is a cron minute field (`*`, `1-59/3`),
# or `START:PERIOD` for an interval of PERIOD seconds from the Unix time START (`--every`).
APS = r'''
import datetime, signal, subprocess, sys, threading
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
folder, n, when = sys.argv[1], int(sys.argv[2]), sys.argv[3]
if ":" in when:
    start, period = (int(x) for x in when.split(":"))
    first = datetime.datetime.fromtimestamp(start, datetime.timezone.utc)
    trigger = lambda: IntervalTrigger(seconds=period, start_date=first)
else:
    trigger = lambda: CronTrigger(minute=when)
scheduler = BackgroundScheduler()
for i in range(n):
    scheduler.add_job(subprocess.call, trigger(),
                      args=[["sh", "-c", f"date +%s%N > {folder}/job-{i:03}"]], id=f"job-{i:03}")
scheduler.start()
print("ready", flush=True)
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
stop.wait()
scheduler.shutdown(wait=False)
'''

# The machine's floor: no scheduler, nothing recorded. At each of its times (`first`, then
# every `period` seconds) it starts the 200 commands at once (`posix_spawn`, as `jobctl` does)
# and reaps them.
FLOOR = r'''
import os, signal, sys, time
folder, n, first, period = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
print("ready", flush=True)
at = first
while True:
    while at * 1_000_000_000 <= time.time_ns():
        at += period
    time.sleep(max(0, (at * 1_000_000_000 - time.time_ns()) / 1e9))
    pids = [os.posix_spawn("/bin/sh", ["sh", "-c", f"date +%s%N > {folder}/job-{j:03}"], os.environ)
            for j in range(n)]
    for pid in pids:
        os.waitpid(pid, 0)
'''


def per_thread(pid, read):
    out = {}
    try:
        for t in os.listdir(f"/proc/{pid}/task"):
            try:
                out[t] = read(pid, t)
            except (OSError, ValueError):
                pass
    except OSError:
        pass
    return out


def cpu_ns(pid, t):
    return int(open(f"/proc/{pid}/task/{t}/schedstat").read().split()[0])


def switches(pid, t):
    return sum(int(l.split()[1]) for l in open(f"/proc/{pid}/task/{t}/status") if "ctxt_switches" in l)


def children_ms(pid):
    """The CPU of the reaped children of `pid` (cutime + cstime), in ms."""
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(fields[13]) + int(fields[14])) * 1000 / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


def start(i, system, k, every, base):
    """Starts system `i` of `k`. Minutes: it fires at the minutes m with m % k == i (`base` is a
    minute's start with base/60 % k == 0). `every`: at base + i * (every // k), then every
    `every` seconds."""
    root = tempfile.mkdtemp(prefix=f"burst-{i}-")
    stamps = os.path.join(root, "stamps")
    os.makedirs(stamps)
    first = base + (i * (every // k) if every else 60 * i)
    if system == "aps":
        python = os.path.join(tempfile.gettempdir(), "jobs-burst-apscheduler", "bin", "python3")
        when = f"{first}:{every}" if every else (f"{i}-59/{k}" if k > 1 else "*")
        p = subprocess.Popen([python, "-c", APS, stamps, str(JOBS), when],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        p.stdout.readline()
        return p, stamps
    if system == "floor":
        period = every or 60 * k
        p = subprocess.Popen([sys.executable, "-c", FLOOR, stamps, str(JOBS), str(first), str(period)],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        p.stdout.readline()
        return p, stamps
    jobs_d = os.path.join(root, "jobs.d")
    os.makedirs(jobs_d)
    if every:
        start_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(first))
        schedule = f'\n  every: {every}s\n  start_at: "{start_at}"'
    else:
        schedule = ' "' + (f"{i}-59/{k}" if k > 1 else "*") + ' * * * *"'
    for j in range(JOBS):
        with open(f"{jobs_d}/burst-{j:03}.yaml", "w") as f:
            f.write(f'description: Burst job {j}\nschedule:{schedule}\n'
                    f'command: ["sh", "-c", "date +%s%N > {stamps}/job-{j:03}"]\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBS_")}
    env["NO_COLOR"] = "1"
    log = os.path.join(root, "serve.log")
    p = subprocess.Popen([system, "--dir", jobs_d, "--ledger", os.path.join(root, "ledger.db"), "serve",
                          "--listen", "127.0.0.1:0", "--shutdown-grace", "5s"],
                         stdout=subprocess.DEVNULL, stderr=open(log, "w"), env=env, cwd=root)
    for _ in range(600):
        if "listening" in open(log).read():
            break
        time.sleep(0.1)
    return p, stamps


def boundaries(k, every, base):
    """(instant in ns, system index) of every boundary from 3 s from now on, in time order."""
    now = time.time_ns()
    period, step = (every, every // k) if every else (60 * k, 60)
    n = 0
    while True:
        for i in range(k):
            at = int((base + n * period + i * step) * 1_000_000_000)
            if at - now >= 3_000_000_000:
                yield at, i
        n += 1


def main():
    args = sys.argv[1:]
    every = 0
    if args[:1] == ["--every"]:
        every, args = int(args[1]), args[2:]
    # A path to a binary is taken from here, not from the temp dir each daemon runs in.
    systems = [s if s in ("aps", "floor") or "/" not in s else os.path.abspath(s)
               for s in args[0].split(",")]
    rounds = int(args[1]) if len(args) > 1 else 3
    k = len(systems)
    # A minute whose number is a multiple of k: system i fires at the minutes m % k == i.
    base = (int(time.time()) // (60 * k)) * 60 * k
    procs = [start(i, s, k, every, base) for i, s in enumerate(systems)]
    results = {s: [] for s in systems}
    seen = {s: 0 for s in systems}
    # What is measured of a boundary: from `before` ahead of it to `after` past it.
    before, after = (0.5, every // k - 0.6) if every else (1.0, 4.0)
    try:
        measured = 0
        for at, i in boundaries(k, every, base):
            if measured >= rounds * k:
                break
            system = systems[i]
            p, stamps = procs[i]
            time.sleep(max(0, (at - time.time_ns()) / 1e9 - before))
            cpu0, cs0 = per_thread(p.pid, cpu_ns), per_thread(p.pid, switches)
            kids0 = children_ms(p.pid)
            time.sleep(max(0, (at - time.time_ns()) / 1e9 + after))
            cpu1, cs1 = per_thread(p.pid, cpu_ns), per_thread(p.pid, switches)
            kids = children_ms(p.pid) - kids0
            seen[system] += 1
            if seen[system] == 1:
                continue  # its first boundary: cold
            measured += 1
            cpu = sum(v - cpu0.get(t, 0) for t, v in cpu1.items()) / 1e6
            cs = sum(v - cs0.get(t, 0) for t, v in cs1.items())
            late = []
            for j in range(JOBS):
                try:
                    late.append((int(open(f"{stamps}/job-{j:03}").read()) - at) / 1e6)
                except (OSError, ValueError):
                    pass
            late = sorted(x for x in late if 0 <= x < after * 1000)
            if len(late) < JOBS:
                print(f"{system}: {JOBS - len(late)} stamps missing", flush=True)
                continue
            row = (cpu, cs, late[0], statistics.median(late), late[int(0.99 * (JOBS - 1))], kids)
            results[system].append(row)
            print(f"{os.path.basename(system):16} cpu {cpu:5.0f} ms  switches {cs:5}  first {row[2]:5.1f}  "
                  f"p50 {row[3]:4.0f}  p99 {row[4]:4.0f} ms  children {kids:4.0f} ms", flush=True)
    finally:
        for p, _ in procs:
            p.send_signal(signal.SIGTERM)
        for p, _ in procs:
            p.wait()
    print("medians over the boundaries:")
    for s in systems:
        r = results[s]
        if r:
            med = [statistics.median(x[i] for x in r) for i in range(6)]
            ratio = statistics.median(x[4] / x[5] for x in r if x[5] > 0) if any(x[5] for x in r) else 0
            print(f"{os.path.basename(s):16} n {len(r)}  cpu {med[0]:.0f} ms  switches {med[1]:.0f}  "
                  f"first {med[2]:.1f}  p50 {med[3]:.0f}  p99 {med[4]:.0f} ms  children {med[5]:.0f} ms  "
                  f"p99/children {ratio:.3f}")


if __name__ == "__main__":
    main()
