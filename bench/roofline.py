#!/usr/bin/env python3
"""Roofline of one real-size Wan 2.2 DiT block on this CPU: the measured GEMM peak at the
block's shapes, then the block by phase, in achieved FLOP/s and as a fraction of that peak.

usage: roofline.py [--quick] [--models LIST] [--dtypes LIST] [--threads LIST] [--tokens LIST]
                   [--attention LIST] [--repeat N] [--json FILE]

The block is the exporter's `WanAttentionBlock` (models/export/wanrt_export/dit.py), the code
the C++ runtime runs as TorchScript, with random weights at the TI2V-5B (dim 3072, 24 heads,
FFN 14336) or A14B (dim 5120, 40 heads, FFN 13824) size. "bf16" is the storage the exporter
writes: every matrix in bf16, the keep-fp32 parameters (modulation, norm3, q/k RMSNorm) in
fp32, the residual stream in fp32. Tokens are a latent grid F x H x W patched 1 x 2 x 2;
the text context is the model's 512 tokens. The host allocator is configured as the C++
runtime does (wanrt_export.host_allocator, glibc with raised mmap/trim thresholds).

1. GEMM peak: `F.linear` (what nn.Linear runs, weight [out, in]) at [L, D] x [D, D],
   [L, D] x [D, F] and [L, F] x [F, D] for the largest L measured; the peak is the fastest of
   the three, per dtype and thread count. fp32 goes to the BLAS LibTorch was built with (MKL in
   the PyPI wheel, OpenBLAS/reference BLAS in Debian's), bf16 to oneDNN.
2. The block: one scripted forward (as the runtime runs it), then the same forward split into
   phases with a timer around each (checked equal to the scripted output, so the split cannot
   drift from the model code):
     norms+mod    modulation sums, the three LayerNorms, scale/shift, gated residual adds
     sa.proj      self-attention q, k, v, o projections
     sa.qk+rope   q/k RMSNorm across heads, RoPE, the casts to the compute dtype
     sa.core      attention itself (QK^T, softmax, PV): SDPA or the query-chunked softmax
     ca.proj      cross-attention q, o over the tokens and k, v over the 512 text tokens
     ca.rest      cross-attention q/k RMSNorm, casts and its attention core
     ffn.gemm     the two FFN projections
     ffn.gelu     GELU(tanh) on [L, F]
   FLOPs counted: 2 per multiply-add of every projection and of QK^T and PV (self and cross);
   norms, softmax, RoPE and GELU count 0, so their time shows as lost fraction.

Prints Markdown tables; --json also writes every figure.
"""
import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

EXPORT_DIR = Path(__file__).resolve().parents[1] / "models" / "export"
MODELS = {"5b": "ti2v-5b", "a14b": "t2v-a14b"}
# tokens -> latent grid (F, H, W); tokens = F * H/2 * W/2.
GRIDS = {320: (5, 16, 16), 1024: (4, 32, 32), 2048: (8, 32, 32), 4096: (16, 32, 32),
         8192: (8, 64, 64)}
PHASES = ["norms+mod", "sa.proj", "sa.qk+rope", "sa.core", "ca.proj", "ca.rest", "ffn.gemm",
          "ffn.gelu"]


def block_flops(tokens: int, dim: int, ffn: int, text: int) -> dict:
    """FLOPs per phase of one block forward, batch 1."""
    return {
        "sa.proj": 4 * 2 * tokens * dim * dim,
        "sa.core": 2 * 2 * tokens * tokens * dim,
        "ca.proj": 2 * 2 * tokens * dim * dim + 2 * 2 * text * dim * dim,
        "ca.rest": 2 * 2 * tokens * text * dim,
        "ffn.gemm": 2 * 2 * tokens * dim * ffn,
    }


def best_time(fn, repeat: int) -> float:
    fn()  # warm-up: oneDNN primitive creation, allocator pages
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def gemm_peak(torch, dtype, tokens: int, dim: int, ffn: int, repeat: int) -> dict:
    """GFLOP/s of F.linear at the block's three GEMM shapes."""
    F = torch.nn.functional
    out = {}
    for name, (k, n) in {"DxD": (dim, dim), "DxF": (dim, ffn), "FxD": (ffn, dim)}.items():
        x = torch.randn(tokens, k).to(dtype)
        w = (torch.randn(n, k) * k ** -0.5).to(dtype)
        b = torch.zeros(n, dtype=dtype)
        sec = best_time(lambda: F.linear(x, w, b), max(repeat, 5))
        out[name] = 2 * tokens * k * n / sec / 1e9
    out["peak"] = max(out.values())
    return out


class PhaseTimer:
    def __init__(self):
        self.spent = {p: 0.0 for p in PHASES}

    def run(self, phase: str, fn, *args):
        t0 = time.perf_counter()
        out = fn(*args)
        self.spent[phase] += time.perf_counter() - t0
        return out


def phased_forward(block, state, timer: PhaseTimer):
    """WanAttentionBlock.forward with a timer per phase (dit.py's code, in the same order)."""
    from wanrt_export import attention as attn
    from wanrt_export.rope import rope_apply

    x, e0, context, cos, sin = state[0], state[1], state[3], state[4], state[5]
    sa, ca = block.self_attn, block.cross_attn

    def attend(module, q, k, v, phase):
        cdt = module.o.weight.dtype
        b, lq = q.size(0), q.size(1)
        q, k, v = timer.run(phase, lambda: (q.transpose(1, 2).to(cdt), k.transpose(1, 2).to(cdt),
                                            v.transpose(1, 2).to(cdt)))
        core = attn.attention_sdpa if module.use_sdpa else attn.attention_math
        out = timer.run(phase, core, q, k, v)
        out = timer.run(phase, lambda: out.transpose(1, 2).reshape(b, lq, module.dim))
        return out

    def modulate():
        m = block.modulation.float().unsqueeze(0) + e0
        return m, block.norm1(x) * (1.0 + m[:, :, 1]) + m[:, :, 0]

    m, h = timer.run("norms+mod", modulate)
    n, d = sa.num_heads, sa.head_dim
    xin = timer.run("sa.qk+rope", lambda: h.to(sa.q.weight.dtype))
    q = timer.run("sa.proj", sa.q, xin)
    k = timer.run("sa.proj", sa.k, xin)
    v = timer.run("sa.proj", sa.v, xin)
    q = timer.run("sa.qk+rope", lambda: rope_apply(sa.norm_q(q).view(1, -1, n, d), cos, sin))
    k = timer.run("sa.qk+rope", lambda: rope_apply(sa.norm_k(k).view(1, -1, n, d), cos, sin))
    v = v.view(1, -1, n, d)
    y = timer.run("sa.proj", sa.o, attend(sa, q, k, v, "sa.core"))
    x = timer.run("norms+mod", lambda: x + y.float() * m[:, :, 2])

    dt = ca.q.weight.dtype
    h3 = timer.run("norms+mod", lambda: block.norm3(x).to(dt))
    c = timer.run("ca.rest", lambda: context.to(dt))
    q = timer.run("ca.proj", ca.q, h3)
    k = timer.run("ca.proj", ca.k, c)
    v = timer.run("ca.proj", ca.v, c)
    q = timer.run("ca.rest", lambda: ca.norm_q(q).view(1, -1, n, d))
    k = timer.run("ca.rest", lambda: ca.norm_k(k).view(1, -1, n, d))
    y = timer.run("ca.proj", ca.o, attend(ca, q, k, v.view(1, -1, n, d), "ca.rest"))
    x = timer.run("norms+mod", lambda: x + y.float())

    f0, f2 = block.ffn[0], block.ffn[2]
    h = timer.run("norms+mod",
                  lambda: (block.norm2(x) * (1.0 + m[:, :, 4]) + m[:, :, 3]).to(f0.weight.dtype))
    h = timer.run("ffn.gemm", f0, h)
    h = timer.run("ffn.gelu", block.ffn[1], h)
    y = timer.run("ffn.gemm", f2, h)
    return timer.run("norms+mod", lambda: x + y.float() * m[:, :, 5])


def make_block(torch, model: str, dtype_name: str, tokens: int, attention: str):
    """(scripted block, eager block, state) with random weights at the model's size."""
    from wanrt_export import attention as attn
    from wanrt_export import manifest as mf
    from wanrt_export.configs import get_config
    from wanrt_export.dit import WanModel, keep_fp32_patterns

    torch.manual_seed(0)
    cfg = dataclasses.replace(get_config(MODELS[model]).dit, num_layers=1)
    with attn.use(attention):
        m = WanModel(cfg).eval()
    if dtype_name == "bf16":
        mf.cast_parameters_(m, torch.bfloat16, keep_fp32_patterns())
    with torch.no_grad():
        for name, p in m.blocks[0].named_parameters():
            if name == "modulation":
                p.normal_(0.0, 0.1)
    x = torch.randn(1, cfg.in_dim, *GRIDS[tokens])
    ctx = torch.randn(1, cfg.text_len, cfg.text_dim)
    with torch.no_grad():
        state = m.prologue([x, torch.tensor([500.0]), ctx])
    block = m.blocks[0]
    return torch.jit.script(block), block, state, cfg


def run_block(torch, model, dtype_name, tokens, attention, repeat) -> dict:
    scripted, block, state, cfg = make_block(torch, model, dtype_name, tokens, attention)
    with torch.no_grad():
        whole = best_time(lambda: scripted(state), repeat)
        reference = scripted(state)[0]
        timers = []
        for _ in range(repeat + 1):  # the first is a warm-up
            timers.append(PhaseTimer())
            out = phased_forward(block, state, timers[-1])
        # The phased code must compute what the model code computes.
        err = ((out - reference).abs().max() / reference.abs().max()).item()
        if err > 1e-5:
            raise SystemExit(f"phased forward differs from the block by {err:.2e} (relative)")
    spent = {p: min(t.spent[p] for t in timers[1:]) for p in PHASES}
    return {"seconds": whole, "phases": spent, "flops": block_flops(tokens, cfg.dim, cfg.ffn_dim,
                                                                     cfg.text_len),
            "dim": cfg.dim, "ffn": cfg.ffn_dim, "heads": cfg.num_heads}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="one small case (5B dims, 320 tokens, both dtypes, 2 threads, 1 repeat)")
    p.add_argument("--models", default="5b,a14b")
    p.add_argument("--dtypes", default="bf16,fp32")
    p.add_argument("--threads", default="1,2")
    p.add_argument("--tokens", default="320,1024,2048,4096,8192")
    p.add_argument("--attention", default="sdpa", help="sdpa, math or both (comma-separated)")
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--json", help="also write every figure here")
    a = p.parse_args()
    if a.quick:
        a.models, a.threads, a.tokens, a.repeat = "5b", "2", "320", 1
    sys.path.insert(0, str(EXPORT_DIR))
    import torch
    from wanrt_export import host_allocator
    from wanrt_export.configs import get_config
    host_allocator.configure()
    # As the C++ runtime runs TorchScript (ModelOptions::jit_optimize = false): no profiling
    # executor, so the first calls are not re-specialised and every call runs the same graph.
    torch._C._set_graph_executor_optimize(False)
    dtypes = {"bf16": torch.bfloat16, "fp32": torch.float32}
    tokens = [int(t) for t in a.tokens.split(",")]
    for t in tokens:
        if t not in GRIDS:
            p.error(f"--tokens: {t} is not one of {', '.join(map(str, GRIDS))}")
    results = {"torch": torch.__version__, "gemm": [], "blocks": []}

    print("| model | dtype | threads | L | DxD GFLOP/s | DxF | FxD | peak |")
    print("|---|---|---|---|---|---|---|---|")
    peaks = {}
    for model in a.models.split(","):
        cfg = get_config(MODELS[model]).dit
        for dt in a.dtypes.split(","):
            for th in (int(t) for t in a.threads.split(",")):
                torch.set_num_threads(th)
                g = gemm_peak(torch, dtypes[dt], max(tokens), cfg.dim, cfg.ffn_dim, a.repeat)
                peaks[(model, dt, th)] = g["peak"]
                results["gemm"].append({"model": model, "dtype": dt, "threads": th,
                                        "tokens": max(tokens), **g})
                print(f"| {model} | {dt} | {th} | {max(tokens)} | {g['DxD']:.0f} | {g['DxF']:.0f} "
                      f"| {g['FxD']:.0f} | {g['peak']:.0f} |", flush=True)

    print()
    print("| model | dtype | threads | attention | tokens | block s | GFLOP | GFLOP/s | of peak | "
          + " | ".join(PHASES) + " |")
    print("|---" * (9 + len(PHASES)) + "|")
    for model in a.models.split(","):
        for dt in a.dtypes.split(","):
            for th in (int(t) for t in a.threads.split(",")):
                torch.set_num_threads(th)
                for att in a.attention.split(","):
                    for t in tokens:
                        r = run_block(torch, model, dt, t, att, a.repeat)
                        total = sum(r["flops"].values())
                        rate = total / r["seconds"] / 1e9
                        share = rate / peaks[(model, dt, th)]
                        phase_sum = sum(r["phases"].values())
                        cells = []
                        for ph in PHASES:
                            sec = r["phases"][ph]
                            f = r["flops"].get(ph, 0)
                            rate_ph = f"{f / sec / 1e9:.0f} GF/s, " if f and sec > 0 else ""
                            cells.append(f"{sec:.3f} s ({rate_ph}{100 * sec / phase_sum:.0f} %)")
                        results["blocks"].append({"model": model, "dtype": dt, "threads": th,
                                                  "attention": att, "tokens": t, **r,
                                                  "gflops_per_s": rate, "of_peak": share})
                        print(f"| {model} | {dt} | {th} | {att} | {t} | {r['seconds']:.3f} | "
                              f"{total / 1e9:.0f} | {rate:.0f} | {100 * share:.0f} % | "
                              + " | ".join(cells) + " |", flush=True)
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
