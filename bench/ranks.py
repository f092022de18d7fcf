#!/usr/bin/env python3
"""One rank against two on this machine: `wanrun generate` alone and with `--ranks 2` as CFG
parallel and as sequence parallel, one thread per rank.

usage: ranks.py WANRUN BUNDLE [--quick] [--size WxH] [--frames N] [--steps N] [--guidance G]

Per configuration: denoise seconds per step (the report's times_s.denoise / steps), the time
rank 0 spent in collectives per step (parallel.comm_seconds; the rest of the rank's step is
its DiT work and waiting for the slower rank shows up inside the collectives), and every rank's
peak RSS (VmHWM, sampled from /proc every 50 ms while the processes live; the report has only
rank 0's). Also one rank on 2 threads: the same cores as two ranks of 1 thread. Prints one
Markdown table. --quick: 2 steps at the bundle's default size, to check the script still works.
"""
import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MIB = 1 << 20


def descendants(root: int) -> list:
    """Process ids below `root` (children, grandchildren, ...), from /proc."""
    parent = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                parent[int(entry.name)] = int(stat[stat.rindex(")") + 2:].split()[1])
            except (OSError, ValueError):
                pass
    found, frontier = [], [root]
    while frontier:
        p = frontier.pop()
        kids = [c for c, pp in parent.items() if pp == p]
        found += kids
        frontier += kids
    return found


def vm_hwm(pid: int) -> int:
    try:
        for line in (Path("/proc") / str(pid) / "status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def run(cmd: list) -> tuple:
    """The report of `cmd` and the peak RSS of each wanrun process it ran (pid -> bytes)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peaks = {}
    while proc.poll() is None:
        for pid in [proc.pid, *descendants(proc.pid)]:
            peaks[pid] = max(peaks.get(pid, 0), vm_hwm(pid))
        time.sleep(0.05)
    out, err = proc.communicate()
    if proc.returncode != 0:
        sys.exit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{err}")
    report = json.loads(out)
    if len(peaks) > 1:
        peaks.pop(proc.pid)  # the launcher itself: it loads nothing
    return report, peaks


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("wanrun")
    p.add_argument("bundle")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--size")
    p.add_argument("--frames", type=int)
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--guidance", default="5")
    a = p.parse_args()
    if a.quick:
        a.steps = 2
    out_dir = Path(tempfile.mkdtemp(prefix="wanrt-ranks-"))
    common = [a.wanrun, "generate", "--model", a.bundle, "--prompt", "a red fox in fresh snow",
              "--steps", str(a.steps), "--guidance", a.guidance, "--seed", "1", "--no-verify",
              "--progress", "none", "--json"]
    if a.size:
        common += ["--size", a.size]
    if a.frames:
        common += ["--frames", str(a.frames)]
    configs = [("1 rank, 1 thread", ["--threads", "1"]),
               ("1 rank, 2 threads", ["--threads", "2"]),
               ("2 ranks CFG, 1 thread each", ["--ranks", "2", "--cfg-parallel", "2", "--threads", "1"]),
               ("2 ranks sequence, 1 thread each", ["--ranks", "2", "--cfg-parallel", "1", "--threads", "1"])]
    print("| configuration | denoise s/step | vs 1 rank 1 thread | collectives s/step (rank 0) "
          "| peak RSS per rank MiB |")
    print("|---|---|---|---|---|")
    base = None
    for i, (name, options) in enumerate(configs):
        report, peaks = run([*common, *options, "--out", str(out_dir / f"c{i}.pt")])
        per_step = report["times_s"]["denoise"] / a.steps
        base = base or per_step
        comm = report["parallel"]["comm_seconds"] / a.steps
        rss = ", ".join(f"{v / MIB:.0f}" for _, v in sorted(peaks.items()))
        print(f"| {name} | {per_step:.3f} | {base / per_step:.2f}x | {comm:.3f} | {rss} |",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
