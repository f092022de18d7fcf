#!/usr/bin/env python3
"""One rank against two on this machine: `wanrun generate` alone and with `--ranks 2` as CFG
parallel and as sequence parallel, one thread per rank.

usage: ranks.py WANRUN BUNDLE [--quick] [--size WxH] [--frames N] [--steps N] [--guidance G]

Per configuration, from a run of 1 step and one of N steps (so that what the first step alone
pays, such as paging in the mapped weights, cancels): denoise seconds per step
((T_N - T_1) / (N - 1) of the reports' times_s.denoise), the time rank 0 spent in collectives
per step (parallel.comm_seconds, likewise; waiting for the slower rank is inside it), and the
peak RSS of every rank: rank 0's from its report, the others' sampled from /proc (VmHWM,
every 0.25 s; they do not decode, so their peak is in the denoising). Also one rank on 2
threads: the same cores as two ranks of 1 thread. Prints one Markdown table. --quick: 2 steps
at the bundle's default size, to check the script still works.
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
    """The report of `cmd` and the sampled peak RSS of each wanrun process it ran (pid ->
    bytes; the launcher itself left out when there is one)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peaks, pids, last_scan = {}, [proc.pid], 0.0
    while proc.poll() is None:
        # Scanning /proc costs: every loop until the ranks have appeared (a --quick run is over
        # in seconds), then once a second.
        if len(pids) == 1 or time.monotonic() - last_scan > 1.0:
            pids, last_scan = [proc.pid, *descendants(proc.pid)], time.monotonic()
        for pid in pids:
            peaks[pid] = max(peaks.get(pid, 0), vm_hwm(pid))
        time.sleep(0.05 if len(pids) == 1 else 0.25)
    out, err = proc.communicate()
    if proc.returncode != 0:
        sys.exit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{err}")
    if len(peaks) > 1:
        peaks.pop(proc.pid, None)
    return json.loads(out), [v for _, v in sorted(peaks.items())]


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
              "--guidance", a.guidance, "--seed", "1", "--no-verify",
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
        one, _ = run([*common, "--steps", "1", *options, "--out", str(out_dir / f"c{i}-1.pt")])
        many, peaks = run([*common, "--steps", str(a.steps), *options,
                           "--out", str(out_dir / f"c{i}.pt")])
        per_step = (many["times_s"]["denoise"] - one["times_s"]["denoise"]) / (a.steps - 1)
        base = base or per_step
        comm = (many["parallel"]["comm_seconds"] - one["parallel"]["comm_seconds"]) / (a.steps - 1)
        rss = ", ".join(f"{v / MIB:.0f}" for v in [many["peak_rss_bytes"], *peaks[1:]])
        print(f"| {name} | {per_step:.3f} | {base / per_step:.2f}x | {comm:.3f} | {rss} |",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
