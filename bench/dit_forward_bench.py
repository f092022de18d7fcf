#!/usr/bin/env python3
"""DiT forward time and attention share under each host allocator, eager PyTorch (the Python
reference's code path, models/export/wanrt_export).

usage: dit_forward_bench.py [--policies LIST] [--variants LIST] [--cases LIST] [--repeat N]
                            [--threads T]

Policies (each runs in a fresh process): glibc-default (WANRT_HOST_ALLOCATOR=system),
glibc-tuned (wanrt_export.host_allocator's mallopt), jemalloc and tcmalloc (Debian's
libjemalloc2 / libtcmalloc-minimal4, preloaded: a Python process cannot link them).
Variants of the explicit attention: "before" (the scores scaled in [L, L], copied to fp32,
softmax out of place: the code before the allocator issue) and "after" (attention.py now).
Cases: mid (the mid-ti2v DiT, 8 blocks, at 512x512x17 = 1280 tokens), b3072-1k / b3072-4k (one
TI2V-5B-size block at 1024 / 4096 tokens), b5120-1k (one A14B-size block at 1024 tokens); all
bf16 (keep-fp32 parameters in fp32) with math attention. Prints a Markdown table: median
forward seconds over --repeat runs after one warm-up, the share of it spent in attention (the
score/softmax/value products, timed around each call), and peak RSS of the process.
"""
import argparse
import dataclasses
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

EXPORT_DIR = Path(__file__).resolve().parents[1] / "models" / "export"
PRELOAD = {"jemalloc": "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2",
           "tcmalloc": "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4"}
POLICIES = ["glibc-default", "glibc-tuned", "jemalloc", "tcmalloc"]
CASES = ["mid", "b3072-1k", "b3072-4k", "b5120-1k"]


def _attend_before(q, k, v, scale: float):
    # The explicit attention as exported before this benchmark's issue: three fp32 [L, L]
    # temporaries (copy, scale, softmax) besides the scores.
    import torch
    scores = torch.matmul(q, k.transpose(-2, -1)).float() * scale
    probs = torch.softmax(scores, dim=-1).to(v.dtype)
    return torch.matmul(probs, v)


def build(case: str):
    """(module, state or inputs, runner) for a case, bf16 with keep-fp32 parameters."""
    import torch
    from wanrt_export import attention as attn
    from wanrt_export import manifest as mf
    from wanrt_export.configs import get_config
    from wanrt_export.dit import WanModel, keep_fp32_patterns

    torch.manual_seed(0)
    if case == "mid":
        cfg = get_config("mid-ti2v").dit
        grid = (5, 32, 32)  # 512x512x17 -> latent 5 x 32 x 32 -> 5 x 16 x 16 = 1280 tokens
    else:
        dims, tokens = case[1:].split("-")
        base = get_config("ti2v-5b" if dims == "3072" else "t2v-a14b").dit
        cfg = dataclasses.replace(base, num_layers=1)
        side = 32 if tokens == "1k" else 64  # latent 4 x side x side -> 4 x side/2 x side/2
        grid = (4, side, side)
    with attn.use("math"):
        m = WanModel(cfg).eval()
    mf.cast_parameters_(m, torch.bfloat16, keep_fp32_patterns())
    x = torch.randn(1, cfg.in_dim, *grid)
    t = torch.tensor([500.0])
    ctx = torch.randn(1, 64, cfg.text_dim)
    with torch.no_grad():
        if case == "mid":
            return lambda: m(x, t, ctx)
        state = m.prologue([x, t, ctx])
        block = m.blocks[0]
        return lambda: block(state)


def child(a) -> None:
    sys.path.insert(0, str(EXPORT_DIR))
    import torch
    from wanrt_export import attention as attn
    from wanrt_export import host_allocator
    state = host_allocator.configure()
    torch.set_num_threads(a.threads)
    if a.variant == "before":
        attn._attend = _attend_before
    spent = [0.0]
    inner = attn.attention_math

    chunk = (a.max_scores or attn.MAX_SCORE_ELEMENTS,)

    def timed(q, k, v):
        t0 = time.perf_counter()
        out = inner(q, k, v, *chunk)
        spent[0] += time.perf_counter() - t0
        return out
    attn.attention_math = timed
    run = build(a.case)
    with torch.no_grad():
        run()  # warm-up
        times, shares = [], []
        for _ in range(a.repeat):
            spent[0] = 0.0
            t0 = time.perf_counter()
            run()
            dt = time.perf_counter() - t0
            times.append(dt)
            shares.append(spent[0] / dt)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{statistics.median(times):.3f}\t{statistics.median(shares):.3f}\t{rss:.0f}\t"
          f"{state['allocator']}/{state['policy']}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--policies", default=",".join(POLICIES))
    p.add_argument("--variants", default="before,after")
    p.add_argument("--cases", default=",".join(CASES))
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--max-scores", type=int, default=0,
                   help="score elements per query chunk of the explicit attention (default: attention.py's)")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--case", help=argparse.SUPPRESS)
    p.add_argument("--variant", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        child(a)
        return 0
    print("| case | attention | host allocator | forward s | attention share | peak RSS MiB |")
    print("|---|---|---|---|---|---|")
    for case in a.cases.split(","):
        for variant in a.variants.split(","):
            for policy in a.policies.split(","):
                env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1",
                           WANRT_HOST_ALLOCATOR="tuned" if policy == "glibc-tuned" else "system")
                if policy in PRELOAD:
                    env["LD_PRELOAD"] = PRELOAD[policy]
                r = subprocess.run([sys.executable, __file__, "--child", "--case", case,
                                    "--variant", variant, "--repeat", str(a.repeat),
                                    "--threads", str(a.threads), "--max-scores", str(a.max_scores)],
                                   env=env, capture_output=True, text=True)
                if r.returncode != 0:
                    print(r.stderr, file=sys.stderr)
                    return 1
                sec, share, rss, seen = r.stdout.strip().splitlines()[-1].split("\t")
                print(f"| {case} | {variant} | {policy} ({seen}) | {float(sec):.3f} | "
                      f"{100 * float(share):.0f} % | {rss} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
