#!/usr/bin/env python3
"""C++ pipeline (wanrun generate) against the eager Python reference on the same bundle.

usage: bench/pipeline_vs_reference.py WANRUN BUNDLE [BUNDLE...] [--repeat N] [--threads T]

For each bundle: N runs of each side with the same prompt and seed, in separate processes,
LibTorch/PyTorch intra-op threads set to T on both. Reports the median load time and the
median generation time (text encoding + denoising + VAE decode; file writing excluded), the
ratio C++/Python, and checks that both produced the same frames. Prints a Markdown table.
"""
import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

EXPORT_DIR = Path(__file__).resolve().parents[1] / "models" / "export"
PROMPT = "a red fox running through fresh snow"

PYTHON_RUN = r"""
import sys, time, json, torch
sys.path.insert(0, sys.argv[1])
torch.set_num_threads(int(sys.argv[3]))
from wanrt_export.pipeline import ReferencePipeline
t0 = time.perf_counter()
pipe = ReferencePipeline.from_bundle(sys.argv[2])
t1 = time.perf_counter()
frames = pipe.generate(sys.argv[4], seed=0)
t2 = time.perf_counter()
torch.save(frames, sys.argv[5])
print(json.dumps({"load": t1 - t0, "generate": t2 - t1}))
"""


def run_python(bundle, threads, out):
    r = subprocess.run([sys.executable, "-c", PYTHON_RUN, str(EXPORT_DIR), str(bundle),
                        str(threads), PROMPT, str(out)], capture_output=True, text=True, check=True)
    return json.loads(r.stdout.strip().splitlines()[-1])


def run_cpp(wanrun, bundle, threads, out):
    r = subprocess.run([wanrun, "generate", "--model", str(bundle), "--prompt", PROMPT,
                        "--seed", "0", "--threads", str(threads), "--json", "--out", str(out)],
                       capture_output=True, text=True, check=True)
    t = json.loads(r.stdout)["times_s"]
    gen = sum(t.get(k, 0.0) for k in ("text_encoder", "vae_encode", "denoise", "vae_decode"))
    return {"load": t["load"], "generate": gen}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("wanrun")
    ap.add_argument("bundles", nargs="+")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    import torch
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for bundle in args.bundles:
            py, cpp = [], []
            for i in range(args.repeat):
                py.append(run_python(bundle, args.threads, Path(tmp) / "py.pt"))
                cpp.append(run_cpp(args.wanrun, bundle, args.threads, Path(tmp) / "cpp.pt"))
                print(f"{Path(bundle).name} run {i + 1}: python {py[-1]} c++ {cpp[-1]}",
                      file=sys.stderr)
            same = torch.equal(torch.load(Path(tmp) / "py.pt"), torch.load(Path(tmp) / "cpp.pt"))
            med = lambda runs, k: statistics.median(r[k] for r in runs)  # noqa: E731
            rows.append((Path(bundle).name, med(py, "load"), med(cpp, "load"),
                         med(py, "generate"), med(cpp, "generate"), same))
    print(f"| bundle | load Python (s) | load C++ (s) | generate Python (s) | generate C++ (s) "
          f"| C++/Python | same frames |")
    print("|---|---|---|---|---|---|---|")
    for name, lp, lc, gp, gc, same in rows:
        print(f"| {name} | {lp:.2f} | {lc:.2f} | {gp:.2f} | {gc:.2f} | {gc / gp:.2f} | "
              f"{'yes' if same else 'NO'} |")


if __name__ == "__main__":
    main()
