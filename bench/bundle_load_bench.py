"""Loading a bundle in format 1 against format 2: time, resident memory, sharing.

Runs build/<preset>/bench/load_bench on each bundle given (the same weights in both formats,
e.g. one written by the exporter and its `wanrt_export convert --format 1` copy):

- cold: after dropping the page cache (needs root: /proc/sys/vm/drop_caches; skipped
  otherwise), load every component, then touch every weight;
- warm: the same again with the files in the page cache;
- shared (format 2): two processes load and touch the same bundle at once; each one's Rss and
  Pss (/proc/self/smaps_rollup) while both hold it.

Prints a Markdown table per bundle (bench/README.md, "Loading: format 1 against format 2").

    python3 bench/bundle_load_bench.py --load-bench build/release/bench/load_bench \\
        --bundle /tmp/mid-v1 --bundle /tmp/mid-v2 [--component dit] [--quick]
"""
import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

MIB = float(1 << 20)


def drop_caches() -> bool:
    try:
        subprocess.run(["sync"], check=True)
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


def run(load_bench: str, bundle: Path, components, hold: int = 0):
    cmd = [load_bench, str(bundle), "--touch"]
    for c in components:
        cmd += ["--component", c]
    if hold:
        cmd += ["--hold", str(hold)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def lines(proc) -> list:
    out, err = proc.communicate(timeout=3600)
    if proc.returncode != 0:
        sys.exit(f"load_bench failed ({proc.returncode}): {err}")
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def mib(n: int) -> str:
    return f"{n / MIB:,.0f}"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--load-bench", required=True)
    p.add_argument("--bundle", type=Path, action="append", required=True)
    p.add_argument("--component", action="append", default=[])
    p.add_argument("--quick", action="store_true", help="warm runs only, no sharing run")
    a = p.parse_args()
    for bundle in a.bundle:
        print(f"\n### {bundle}\n")
        print("| run | component | format | stored MiB | load s | RSS after load, MiB (anon / file) "
              "| touch s | RSS after touch, MiB (anon / file) |")
        print("|---|---|---|---|---|---|---|---|")
        runs = [("warm", False)] if a.quick else [("cold", True), ("warm", False)]
        fmt, slowest = 0, 0.0
        for label, cold in runs:
            if cold and not drop_caches():
                print(f"| cold | (skipped: cannot drop the page cache without root) |")
                continue
            if not cold:
                lines(run(a.load_bench, bundle, a.component))  # fill the page cache
            for r in lines(run(a.load_bench, bundle, a.component)):
                fmt = r["format"]
                slowest += r["load_s"] + r["touch_s"] if not cold else 0.0
                grow = lambda k: r[f"{k}_rss"] - r["before_rss"]  # noqa: E731
                print(f"| {label} | {r['component']} | {r['format']} | {mib(r['bytes'])} | "
                      f"{r['load_s']:.2f} | +{mib(grow('loaded'))} "
                      f"({mib(r['loaded_anon'] - r['before_anon'])} / {mib(r['loaded_file'] - r['before_file'])}) | "
                      f"{r['touch_s']:.2f} | +{mib(grow('touched'))} "
                      f"({mib(r['touched_anon'] - r['before_anon'])} / {mib(r['touched_file'] - r['before_file'])}) |")
        if a.quick or fmt != 2:
            continue  # format 1: two processes simply hold two copies
        # Two processes at once: the second starts half a hold later; each measures after one
        # hold and stays another, so both hold the bundle while either measures.
        hold = int(4 * slowest) + 10
        procs = [run(a.load_bench, bundle, a.component, hold)]
        time.sleep(hold / 2)
        procs.append(run(a.load_bench, bundle, a.component, hold))
        print("\n| process | Rss MiB | Pss MiB (file / anon) |\n|---|---|---|")
        for i, proc in enumerate(procs):
            last = lines(proc)[-1]
            print(f"| {i + 1} | {mib(last['rss'])} | {mib(last['pss'])} "
                  f"({mib(last['pss_file'])} / {mib(last['pss_anon'])}) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
