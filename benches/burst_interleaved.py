#!/usr/bin/env python3
"""The burst of issue 14, several systems side by side, warm and interleaved.

    python3 benches/burst_interleaved.py BIN_A,BIN_B,aps ROUNDS

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
"""
import os, statistics, signal, subprocess, sys, tempfile, time

JOBS = 200
APS = r'''
import signal, subprocess, sys, threading
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
folder, n, minute = sys.argv[1], int(sys.argv[2]), sys.argv[3]
scheduler = BackgroundScheduler()
for i in range(n):
    scheduler.add_job(subprocess.call, CronTrigger(minute=minute),
                      args=[["sh", "-c", f"date +%s%N > {folder}/job-{i:03}"]], id=f"job-{i:03}")
scheduler.start()
print("ready", flush=True)
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
stop.wait()
scheduler.shutdown(wait=False)
'''

# The machine's floor: no scheduler, nothing recorded. At each of its minutes it starts the
# 200 commands at once (`posix_spawn`, as `jobctl` does) and reaps them.
FLOOR = r'''
import os, signal, sys, time
folder, n, i, k = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
print("ready", flush=True)
while True:
    m = time.time_ns() // 60_000_000_000 + 1
    while m % k != i:
        m += 1
    time.sleep(max(0, (m * 60_000_000_000 - time.time_ns()) / 1e9))
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


def start(i, system, k):
    root = tempfile.mkdtemp(prefix=f"burst-{i}-")
    stamps = os.path.join(root, "stamps")
    os.makedirs(stamps)
    minute = f"{i}-59/{k}" if k > 1 else "*"
    if system == "aps":
        python = os.path.join(tempfile.gettempdir(), "jobs-burst-apscheduler", "bin", "python3")
        p = subprocess.Popen([python, "-c", APS, stamps, str(JOBS), minute],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        p.stdout.readline()
        return p, stamps
    if system == "floor":
        p = subprocess.Popen([sys.executable, "-c", FLOOR, stamps, str(JOBS), str(i), str(k)],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        p.stdout.readline()
        return p, stamps
    jobs_d = os.path.join(root, "jobs.d")
    os.makedirs(jobs_d)
    for j in range(JOBS):
        with open(f"{jobs_d}/burst-{j:03}.yaml", "w") as f:
            f.write(f'description: Burst job {j}\nschedule: "{minute} * * * *"\n'
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


def main():
    systems = sys.argv[1].split(",")
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    k = len(systems)
    procs = [start(i, s, k) for i, s in enumerate(systems)]
    results = {s: [] for s in systems}
    seen = {s: 0 for s in systems}
    try:
        now = time.time_ns()
        m = now // 60_000_000_000 + 1
        if m * 60_000_000_000 - now < 3_000_000_000:
            m += 1
        measured = 0
        while measured < rounds * k:
            at = m * 60_000_000_000
            system = systems[m % k]
            p, stamps = procs[m % k]
            m += 1
            time.sleep(max(0, (at - time.time_ns()) / 1e9 - 1.0))
            cpu0, cs0 = per_thread(p.pid, cpu_ns), per_thread(p.pid, switches)
            kids0 = children_ms(p.pid)
            time.sleep(max(0, (at + 4_000_000_000 - time.time_ns()) / 1e9))
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
            late = sorted(x for x in late if 0 <= x < 30_000)
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
            print(f"{os.path.basename(s):16} n {len(r)}  cpu {med[0]:.0f} ms  switches {med[1]:.0f}  "
                  f"first {med[2]:.1f}  p50 {med[3]:.0f}  p99 {med[4]:.0f} ms  children {med[5]:.0f} ms")


if __name__ == "__main__":
    main()
