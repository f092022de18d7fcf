#!/usr/bin/env python3
"""wanrun generate under several host allocators: time per stage, peak RSS, identical output.

usage: host_allocator_bench.py --run LABEL=WANRUN[:POLICY] [--run ...] --bundle NAME=DIR [...]
                               [--repeat N] [-- generate options...]

Each --run is a wanrun binary (for example one built with -DWANRT_MALLOC_LIBRARY=jemalloc) and
the WANRT_HOST_ALLOCATOR policy to run it with (tuned, the default, or system). Every run of
every bundle must write the same frames as the first run of that bundle (allocators do not
change arithmetic); the script fails otherwise. Prints a Markdown table (median of --repeat
runs; peak RSS is the maximum). Numbers and commands: bench/README.md.
"""
import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

DEFAULT_GENERATE = ["--prompt", "a red fox running through fresh snow", "--size", "512x512",
                    "--frames", "17", "--steps", "2", "--dtype", "bf16", "--device", "cpu",
                    "--threads", "2", "--seed", "0", "--no-verify"]


def pair(text: str):
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected LABEL=VALUE, got '{text}'")
    return tuple(text.split("=", 1))


def run_once(wanrun: str, policy: str, bundle: str, extra, out: Path) -> dict:
    env = dict(os.environ, WANRT_HOST_ALLOCATOR=policy)
    cmd = [wanrun, "generate", "--model", bundle, *extra, "--json", "--progress", "none",
           "--out", str(out)]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stderr}")
    doc = json.loads(r.stdout)
    doc["_sha256"] = hashlib.sha256(out.read_bytes()).hexdigest()
    return doc


def main() -> int:
    argv = sys.argv[1:]
    extra = DEFAULT_GENERATE
    if "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1:]
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--run", type=pair, action="append", required=True, metavar="LABEL=WANRUN[:POLICY]")
    p.add_argument("--bundle", type=pair, action="append", required=True, metavar="NAME=DIR")
    p.add_argument("--repeat", type=int, default=1)
    a = p.parse_args(argv)
    print("| bundle | run | allocator (policy) | text s | denoise s | decode s | total s | peak RSS MiB | frames |")
    print("|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for bname, bdir in a.bundle:
            reference = None
            for label, spec in a.run:
                wanrun, _, policy = spec.partition(":")
                docs = [run_once(wanrun, policy or "tuned", bdir, extra, Path(tmp) / "out.pt")
                        for _ in range(a.repeat)]
                sha = docs[0]["_sha256"]
                if any(d["_sha256"] != sha for d in docs):
                    sys.exit(f"{label} on {bname}: repeated runs wrote different frames")
                if reference is None:
                    reference = (label, sha)
                same = "same" if sha == reference[1] else f"DIFFERENT from {reference[0]}"
                med = {k: statistics.median(d["times_s"].get(k, 0.0) for d in docs)
                       for k in ("text_encoder", "denoise", "vae_decode", "total")}
                rss = max(d["peak_rss_bytes"] for d in docs) / 2**20
                ha = docs[0].get("host_allocator", {})
                print(f"| {bname} | {label} | {ha.get('allocator', '?')} ({ha.get('policy', '?')}) | "
                      f"{med['text_encoder']:.1f} | {med['denoise']:.1f} | {med['vae_decode']:.1f} | "
                      f"{med['total']:.1f} | {rss:.0f} | {same} |",
                      flush=True)
                if sha != reference[1]:
                    return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
