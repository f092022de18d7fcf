"""Bundle writer: determinism, manifest contents, dtype casting, atomicity, overwrite rules."""
import dataclasses
import fnmatch
import gc
import hashlib
import os
import subprocess
import sys
import weakref
from pathlib import Path

import pytest
import torch
import yaml

from conftest import EXPORT_DIR
from wanrt_export import export as ex
from wanrt_export import manifest as mf
from wanrt_export import safetensors_io as st
from wanrt_export import weights as wt
from wanrt_export.__main__ import main
from wanrt_export.configs import NEG_PROMPT, get_config
from wanrt_export.tokenizer import train_tiny_tokenizer


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    return train_tiny_tokenizer(tmp_path_factory.mktemp("tok"))


@pytest.fixture(scope="module")
def t2v_bundle(tmp_path_factory, tokenizer):
    out = tmp_path_factory.mktemp("b") / "tiny-t2v-moe"
    ex.export_random("tiny-t2v-moe", 3, out, "fp32", tokenizer)
    return out


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _leftovers(parent: Path):
    return [p.name for p in parent.iterdir() if ".tmp-" in p.name or ".old-" in p.name]


def _run_cli(args, hash_seed):
    env = dict(os.environ, PYTHONHASHSEED=str(hash_seed), PYTHONPATH=str(EXPORT_DIR), OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "wanrt_export", *args], env=env, capture_output=True,
                          text=True, timeout=120)


def test_same_seed_same_sha256_across_runs(tmp_path, tokenizer):
    """Two processes (with different string-hash seeds) write byte-identical bundles."""
    files = ["text_encoder.pt", "dit_high_noise.pt", "dit_low_noise.pt", "vae.pt", "wanrt.yaml"]
    outs = []
    for run, seed in ((1, 3), (2, 3), (3, 4)):
        out = tmp_path / f"run{run}"
        res = _run_cli(["export", "--random-weights", "--config", "tiny-t2v-moe", "--seed", str(seed),
                        "--out", str(out), "--tokenizer", str(tokenizer)], hash_seed=run)
        assert res.returncode == 0, res.stderr
        assert "dit_low_noise" in res.stderr  # per-component progress lines
        outs.append(out)
    files += [f.replace(".pt", ".safetensors") for f in files if f.endswith(".pt")]
    for f in files:
        assert _sha(outs[0] / f) == _sha(outs[1] / f), f
    docs = [mf.read_yaml(o / "wanrt.yaml") for o in outs]
    for c in ["text_encoder", "dit_high_noise", "dit_low_noise", "vae"]:
        assert docs[0]["components"][c]["sha256"] == docs[1]["components"][c]["sha256"]
        assert docs[0]["components"][c]["weights_sha256"] == docs[1]["components"][c]["weights_sha256"]
        assert docs[0]["components"][c]["weights_sha256"] != docs[2]["components"][c]["weights_sha256"], c
        # Format 2: the TorchScript file is code and placeholders, the same for any seed.
        assert docs[0]["components"][c]["sha256"] == docs[2]["components"][c]["sha256"], c


def test_same_seed_same_weights_in_process(t2v_bundle, tokenizer, tmp_path):
    again = tmp_path / "again"
    ex.export_random("tiny-t2v-moe", 3, again, "fp32", tokenizer)
    entries = mf.read_yaml(again / "wanrt.yaml")["components"]
    for f, entry in entries.items():
        a, b = wt.component_state_dict(t2v_bundle, entry), wt.component_state_dict(again, entry)
        assert list(a) == list(b)
        assert all(torch.equal(a[k], b[k]) and a[k].dtype == b[k].dtype for k in a), f


def test_random_state_dicts_are_deterministic_and_not_degenerate():
    cfg = get_config("tiny-ti2v")
    for comp in ["text_encoder", "dit", "vae"]:
        a = ex.random_module(cfg, comp, 7).state_dict()
        b = ex.random_module(cfg, comp, 7).state_dict()
        c = ex.random_module(cfg, comp, 8).state_dict()
        assert list(a) == list(b)
        for k in a:
            assert a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]), (comp, k)
            assert a[k].numel() < 2 or a[k].float().std() > 0, (comp, k)
        assert any(not torch.equal(a[k], c[k]) for k in a)
    dit = ex.random_module(cfg, "dit", 0)
    assert dit.blocks[0].modulation.abs().min() > 0
    assert abs(float(dit.blocks[0].self_attn.norm_q.weight.detach().mean()) - 1.0) < 0.05
    hi, lo = ex.random_module(get_config("tiny-t2v-moe"), "dit_high_noise", 0), \
        ex.random_module(get_config("tiny-t2v-moe"), "dit_low_noise", 0)
    assert not torch.equal(hi.blocks[0].ffn[0].weight, lo.blocks[0].ffn[0].weight)


def _tensor_bytes(module, prefix=None):
    seen, total = set(), 0
    for name, t in list(module.named_parameters()) + list(module.named_buffers()):
        if id(t) in seen or (prefix is not None and not name.startswith(prefix)):
            continue
        seen.add(id(t))
        total += t.numel() * t.element_size()
    return total


def test_manifest_contents(t2v_bundle, tokenizer):
    cfg = get_config("tiny-t2v-moe")
    raw = (t2v_bundle / "wanrt.yaml").read_text(encoding="utf-8")
    assert "!!" not in raw  # plain yaml, no python tags
    doc = yaml.safe_load(raw)
    assert list(doc)[:7] == ["format_version", "model_id", "config_name", "task", "attention",
                             "architecture", "sampling"]
    assert doc["format_version"] == 2 and "profile" not in doc
    # The attention the scripted modules bake in: by default SDPA from PyTorch 2.1 on.
    major, minor = (int(p) for p in torch.__version__.split(".")[:2])
    assert doc["attention"] == ("sdpa" if (major, minor) >= (2, 1) else "math")
    assert (doc["model_id"], doc["config_name"], doc["task"]) == ("wan2.2-t2v-tiny-moe", "tiny-t2v-moe", "t2v")
    arch = doc["architecture"]
    assert arch["text_encoder"] == dataclasses.asdict(cfg.t5)
    assert arch["dit"]["dim"] == 64 and arch["dit"]["head_dim"] == 32 and arch["dit"]["patch_size"] == [1, 2, 2]
    assert arch["vae"]["stride"] == [4, 8, 8] and arch["vae"]["patch"] == 1 and len(arch["vae"]["mean"]) == 16
    s = doc["sampling"]
    assert s["boundary"] == 0.875 and s["guide_scale"] == [3.0, 4.0] and s["size"] == [64, 64]
    assert s["negative_prompt"] == NEG_PROMPT and s["sampler"] == "unipc"
    tok = doc["tokenizer"]
    assert tok["file"] == "tokenizer/spiece.model" and tok["sha256"] == _sha(tokenizer)
    assert (tok["pad_id"], tok["eos_id"], tok["unk_id"], tok["text_len"]) == (0, 1, 2, 32)
    assert list(doc["components"]) == ["text_encoder", "dit_high_noise", "dit_low_noise", "vae"]
    for name, entry in doc["components"].items():
        path = t2v_bundle / entry["file"]
        assert entry["file"] == f"{name}.pt" and entry["sha256"] == _sha(path)
        assert entry["weights"] == f"{name}.safetensors"
        assert entry["weights_sha256"] == _sha(t2v_bundle / entry["weights"])
        m = wt.load_component(t2v_bundle, entry)
        assert entry["parameters"] == sum(p.numel() for p in m.parameters())
        assert entry["bytes"] == _tensor_bytes(m)
        assert entry["non_block_bytes"] + sum(entry["block_bytes"]) == entry["bytes"]
        assert entry["dtype"] == "fp32"
        if name == "vae":
            assert entry["contract"] == {"kind": "vae", "methods": mf.VAE_METHODS}
            assert entry["block_bytes"] == []
            continue
        n = cfg.t5.num_layers if name == "text_encoder" else cfg.dit.num_layers
        assert entry["block_bytes"] == [_tensor_bytes(m, f"blocks.{i}.") for i in range(n)]
        assert entry["contract"]["num_blocks"] == n and entry["contract"]["kind"] == "staged"
        assert entry["contract"]["inputs"] == (["ids", "mask"] if name == "text_encoder" else ["x", "t", "context"])
        for method in entry["contract"]["methods"]:
            assert hasattr(m, method), (name, method)
    assert doc["components"]["dit_high_noise"]["expert"] == "high_noise"
    assert doc["components"]["dit_low_noise"]["expert"] == "low_noise"


def test_scripted_files_match_the_modules(t2v_bundle):
    cfg = get_config("tiny-t2v-moe")
    dit = ex.random_module(cfg, "dit_low_noise", 3)
    g = torch.Generator().manual_seed(1)
    x, t, ctx = torch.randn(1, 16, 2, 4, 4, generator=g), torch.tensor([500.0]), torch.randn(1, 5, 64, generator=g)
    ref = dit(x, t, ctx)
    entries = mf.read_yaml(t2v_bundle / "wanrt.yaml")["components"]
    got = wt.load_component(t2v_bundle, entries["dit_low_noise"])(x, t, ctx)
    assert torch.equal(ref, got)
    t5 = ex.random_module(cfg, "text_encoder", 3)
    ids, mask = torch.randint(0, 384, (1, 8), generator=g), torch.ones(1, 8, dtype=torch.long)
    assert torch.equal(t5(ids, mask), wt.load_component(t2v_bundle, entries["text_encoder"])(ids, mask))


def test_format_2_layout(t2v_bundle):
    """What the runtime's mapping relies on, checked from the files themselves."""
    doc = mf.read_yaml(t2v_bundle / "wanrt.yaml")
    for name, entry in doc["components"].items():
        scripted = torch.jit.load(str(t2v_bundle / entry["file"]))
        with st.SafetensorsFile(t2v_bundle / entry["weights"]) as f:
            assert f.metadata == {"wanrt_component": name, "wanrt_format": "2"}
            assert f._data_start % wt.DATA_ALIGNMENT == 0
            params = dict(scripted.named_parameters())
            assert set(f.keys()) == set(params), name
            # Placeholders: shape and dtype kept, one element stored.
            for pname, p in params.items():
                info = f.info(pname)
                assert (list(p.shape), p.dtype) == (list(info.shape), info.torch_dtype), pname
                assert all(st_ == 0 for n, st_ in zip(p.shape, p.stride()) if n > 1), pname
            # Data order: outside the blocks first, then block 0, 1, ... each one contiguous
            # range; every tensor aligned to its element size.
            spans = sorted((i.begin, i.end, k) for k, i in f.infos.items())
            blocks = [int(k.split(".")[1]) if k.startswith("blocks.") else -1 for _, _, k in spans]
            assert blocks == sorted(blocks), name
            for (b, e, k), (b2, _, _) in zip(spans, spans[1:] + [(spans[-1][1], 0, "")]):
                assert b % torch.empty(0, dtype=f.info(k).torch_dtype).element_size() == 0 and e == b2, k
            assert spans[0][0] == 0
        # The code file is small: no weights inside.
        assert os.path.getsize(t2v_bundle / entry["file"]) < os.path.getsize(t2v_bundle / entry["weights"]), name


def test_format_1_and_2_hold_the_same_weights(t2v_bundle, tokenizer, tmp_path):
    v1 = tmp_path / "v1"
    doc1 = ex.export_random("tiny-t2v-moe", 3, v1, "fp32", tokenizer, format_version=1)
    doc2 = mf.read_yaml(t2v_bundle / "wanrt.yaml")
    assert doc1["format_version"] == 1 and "weights" not in doc1["components"]["dit_low_noise"]
    assert not list(v1.glob("*.safetensors"))
    for name in doc2["components"]:
        a = wt.component_state_dict(v1, doc1["components"][name])
        b = wt.component_state_dict(t2v_bundle, doc2["components"][name])
        assert list(a) == list(b) or set(a) == set(b)
        for k in a:
            assert a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]), (name, k)
        assert {k: v for k, v in doc1["components"][name].items() if k not in ("sha256",)} == \
            {k: v for k, v in doc2["components"][name].items() if k not in ("sha256", "weights", "weights_sha256")}


def test_streamed_random_weights_equal_the_module_path(tmp_path):
    """Format 2 random exports stream each parameter into the file from a meta module; the
    bytes must be those of the materialised, randomised and cast module."""
    cfg = get_config("tiny-t2v-moe")
    for comp in ["text_encoder", "dit_low_noise"]:
        for dtype in ["fp32", "bf16"]:
            rc = ex.RandomComponent(cfg, comp, 5, dtype)
            module = rc()
            assert all(p.device.type == "cpu" for p in module.parameters())
            wt.write_weights(module, tmp_path / "module.st", comp, "blocks")
            meta = rc.meta()
            assert all(p.is_meta for p in meta.parameters())
            ex.write_random_weights(meta, rc.seed_value, tmp_path / "streamed.st", comp, "blocks")
            assert (tmp_path / "module.st").read_bytes() == (tmp_path / "streamed.st").read_bytes(), (comp, dtype)


def test_convert_round_trip(t2v_bundle, tmp_path):
    v1, v2 = tmp_path / "v1", tmp_path / "v2"
    assert main(["convert", "--in", str(t2v_bundle), "--out", str(v1), "--format", "1"]) == 0
    assert main(["convert", "--in", str(v1), "--out", str(v2)]) == 0
    d0, d1, d2 = (mf.read_yaml(p / "wanrt.yaml") for p in (t2v_bundle, v1, v2))
    assert (d1["format_version"], d2["format_version"]) == (1, 2)
    assert not list(v1.glob("*.safetensors"))
    for name, entry in d0["components"].items():
        # Back in format 2 the weights files are the exporter's, byte for byte.
        assert d2["components"][name]["weights_sha256"] == entry["weights_sha256"], name
        assert _sha(v2 / entry["weights"]) == entry["weights_sha256"]
        assert list(d2["components"][name]) == list(entry)
        a, b = wt.component_state_dict(v1, d1["components"][name]), wt.component_state_dict(t2v_bundle, entry)
        assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a), name
        assert d1["components"][name]["sha256"] == _sha(v1 / entry["file"])
    assert {k: v for k, v in d2.items() if k != "components"} == {k: v for k, v in d0.items() if k != "components"}
    # Refuses to overwrite, and a profile has nothing to convert.
    assert main(["convert", "--in", str(t2v_bundle), "--out", str(v1)]) == 1


def test_bf16_casting_honours_keep_fp32(tmp_path, tokenizer):
    cfg = get_config("tiny-ti2v")
    out = tmp_path / "bf16"
    doc = ex.export_random("tiny-ti2v", 0, out, "bf16", tokenizer)
    dit = wt.load_component(out, doc["components"]["dit"])
    # Written out independently of dit.keep_fp32_patterns(): the tensors the DiT keeps fp32.
    fp32_names = {"patch_embedding.weight", "patch_embedding.bias", "head.modulation"}
    fp32_names |= {f"{s}.{i}.{w}" for s in ("time_embedding",) for i in (0, 2) for w in ("weight", "bias")}
    fp32_names |= {f"time_projection.1.{w}" for w in ("weight", "bias")}
    for b in range(cfg.dit.num_layers):
        fp32_names |= {f"blocks.{b}.modulation", f"blocks.{b}.norm3.weight", f"blocks.{b}.norm3.bias"}
        fp32_names |= {f"blocks.{b}.{a}.{n}.weight" for a in ("self_attn", "cross_attn") for n in ("norm_q", "norm_k")}
    params = dict(dit.named_parameters())
    assert fp32_names <= set(params)
    for name, p in params.items():
        assert p.dtype == (torch.float32 if name in fp32_names else torch.bfloat16), name
    t5 = dict(wt.load_component(out, doc["components"]["text_encoder"]).named_parameters())
    for name, p in t5.items():
        kept = "norm" in name or "pos_embedding" in name
        assert p.dtype == (torch.float32 if kept else torch.bfloat16), name
    assert all(p.dtype == torch.float32 for p in wt.load_component(out, doc["components"]["vae"]).parameters())
    entry = doc["components"]["dit"]
    assert entry["dtype"] == "bf16" and doc["components"]["vae"]["dtype"] == "fp32"
    expect = sum(p.numel() * (4 if n in fp32_names else 2) for n, p in params.items())
    assert entry["bytes"] == expect
    # bf16 weights are the rounding of the fp32 ones (same seed), and the model still runs.
    ref = ex.random_module(cfg, "dit", 0)
    for name, p in ref.named_parameters():
        assert torch.equal(params[name], p.detach().to(params[name].dtype)), name
    g = torch.Generator().manual_seed(0)
    x, ctx = torch.randn(1, 48, 1, 4, 4, generator=g), torch.randn(1, 6, 64, generator=g)
    a, b = ref(x, torch.tensor([900.0]), ctx), dit(x, torch.tensor([900.0]), ctx)
    assert b.dtype == torch.float32 and torch.isfinite(b).all()
    assert (a - b).norm() / a.norm() < 0.05


def test_failure_midway_leaves_nothing(tmp_path, tokenizer):
    cfg = get_config("tiny-ti2v")
    mods = ex.random_modules(cfg, 0, lazy=True)

    def broken():
        raise RuntimeError("simulated failure while building the vae")
    mods["vae"] = broken
    out = tmp_path / "bundle"
    with pytest.raises(RuntimeError, match="simulated"):
        ex.export_bundle(cfg, mods, tokenizer, out)
    assert not out.exists() and _leftovers(tmp_path) == []


def test_interrupt_during_save_leaves_nothing(tmp_path, tokenizer, monkeypatch):
    calls = []
    real_save = torch.jit.save

    def save(m, f):
        calls.append(f)
        if len(calls) == 2:
            real_save(m, f)
            raise KeyboardInterrupt
        real_save(m, f)
    monkeypatch.setattr(ex.torch.jit, "save", save)
    with pytest.raises(KeyboardInterrupt):
        ex.export_random("tiny-ti2v", 0, tmp_path / "b", "fp32", tokenizer)
    assert len(calls) == 2 and not (tmp_path / "b").exists() and _leftovers(tmp_path) == []


def test_refuse_overwrite_and_force(tmp_path, tokenizer, capsys):
    out = tmp_path / "bundle"
    args = ["export", "--random-weights", "--config", "tiny-ti2v", "--seed", "1", "--out", str(out),
            "--tokenizer", str(tokenizer)]
    assert main(args) == 0
    first = _sha(out / "wanrt.yaml")
    capsys.readouterr()
    assert main(args[:5] + ["2"] + args[6:]) == 1
    assert "already exists" in capsys.readouterr().err and _sha(out / "wanrt.yaml") == first
    with pytest.raises(ex.ExportError, match="--force"):
        ex.export_random("tiny-ti2v", 2, out, "fp32", tokenizer)

    # --force with a failing export keeps the old bundle
    cfg = get_config("tiny-ti2v")
    mods = ex.random_modules(cfg, 2, lazy=True)
    mods["dit"] = lambda: (_ for _ in ()).throw(RuntimeError("boom"))
    with pytest.raises(RuntimeError, match="boom"):
        ex.export_bundle(cfg, mods, tokenizer, out, force=True)
    assert _sha(out / "wanrt.yaml") == first and _leftovers(tmp_path) == []

    assert main(args[:5] + ["2"] + args[6:] + ["--force"]) == 0
    assert _sha(out / "wanrt.yaml") != first and _leftovers(tmp_path) == []

    # --force never deletes a directory that is not a bundle
    data = tmp_path / "data"
    data.mkdir()
    (data / "precious.txt").write_text("keep me")
    assert main(args[:7] + [str(data), "--tokenizer", str(tokenizer), "--force"]) == 1
    assert "not a wanrt bundle" in capsys.readouterr().err and (data / "precious.txt").exists()


def test_cli_usage_errors(tmp_path, capsys):
    for argv in (["export", "--random-weights", "--out", str(tmp_path / "x")],
                 ["export", "--checkpoint-dir", str(tmp_path), "--out", str(tmp_path / "x")],
                 ["export", "--random-weights", "--config", "nope", "--out", str(tmp_path / "x")],
                 ["export", "--config", "tiny-ti2v", "--out", str(tmp_path / "x")],
                 ["frobnicate"]):
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 2, argv
    err = capsys.readouterr().err
    assert "--config" in err and "--model" in err
    assert main(["export", "--checkpoint-dir", str(tmp_path / "missing"), "--model", "ti2v-5b",
                 "--out", str(tmp_path / "y")]) == 1
    assert "not found" in capsys.readouterr().err and not (tmp_path / "y").exists()


def test_factories_are_built_one_at_a_time(tmp_path, tokenizer):
    """A mid-size DiT (dim 256, 4 layers): each component is built only when reached and
    released before the next is built, which is what bounds memory for real sizes."""
    base = get_config("tiny-t2v-moe")
    cfg = dataclasses.replace(base, dit=dataclasses.replace(base.dit, dim=256, ffn_dim=1024, num_heads=4,
                                                            num_layers=4))
    lazy = ex.random_modules(cfg, 5, "bf16", lazy=True)
    alive, order = [], []

    def tracked(name):
        def factory():
            gc.collect()
            order.append((name, [r() is not None for r in alive]))
            m = lazy[name]()
            alive.append(weakref.ref(m))
            return m
        return factory
    progress = []
    doc = ex.export_bundle(cfg, {n: tracked(n) for n in lazy}, tokenizer, tmp_path / "mid", "bf16",
                           progress=progress.append)
    assert [n for n, _ in order] == ["text_encoder", "dit_high_noise", "dit_low_noise", "vae"]
    assert all(not any(flags) for _, flags in order), order
    entry = doc["components"]["dit_high_noise"]
    assert entry["parameters"] == sum(p.numel() for p in ex.build_module(cfg, "dit_high_noise", "meta").parameters())
    assert len(entry["block_bytes"]) == 4 and len(set(entry["block_bytes"])) == 1
    assert any("dit_high_noise" in line and "bf16" in line for line in progress)


def test_meta_build_allocates_nothing_and_matches_real_build():
    cfg = get_config("tiny-i2v-moe")
    for comp in ["text_encoder", "dit_high_noise", "vae"]:
        meta = ex.build_module(cfg, comp, device="meta")
        real = ex.build_module(cfg, comp)
        assert all(p.is_meta for p in meta.parameters())
        assert [(n, p.shape) for n, p in meta.named_parameters()] == \
            [(n, p.shape) for n, p in real.named_parameters()]
        assert mf.size_stats(meta, None if comp == "vae" else "blocks") == \
            mf.size_stats(real, None if comp == "vae" else "blocks")


def test_keep_patterns_are_fnmatch_globs():
    assert mf.is_kept("blocks.12.modulation", ["blocks.*.modulation"])
    assert not mf.is_kept("blocks.1.ffn.0.weight", ["blocks.*.modulation"])
    assert mf.is_kept("blocks.0.norm1.weight", ["*norm*"]) == fnmatch.fnmatchcase("blocks.0.norm1.weight", "*norm*")


def test_sha256_progress(tmp_path, monkeypatch):
    path = tmp_path / "blob"
    path.write_bytes(bytes(range(256)) * 4096)  # 1 MiB
    monkeypatch.setattr(ex, "_HASH_CHUNK", 1 << 16)
    monkeypatch.setattr(ex, "HASH_PROGRESS_BYTES", 1 << 20)
    lines = []
    assert ex.sha256_file(path, lines.append) == hashlib.sha256(path.read_bytes()).hexdigest()
    assert lines[-1].endswith("blob: 100%") and 5 <= len(lines) <= 11
    lines.clear()
    monkeypatch.setattr(ex, "HASH_PROGRESS_BYTES", 2 << 20)
    ex.sha256_file(path, lines.append)
    assert lines == []  # small files hash silently


def test_tiny_bundles_command(tmp_path, capsys):
    from wanrt_export import lora
    from wanrt_export.lora_synth import FIXTURES, OTHER_FAMILY, UNMATCHED_KEYS, bundle_shapes
    assert main(["tiny-bundles", "--out", str(tmp_path)]) == 0
    # LoRA fixtures and the baked lightning bundle
    loras = tmp_path / "loras"
    assert sorted(p.name for p in loras.iterdir()) == sorted(list(FIXTURES) + [OTHER_FAMILY])
    layouts = {n: lora.detect_layout(st.load_file(loras / n)) for n in FIXTURES}
    assert layouts["ti2v-official.safetensors"] == "official" and layouts["ti2v-diffusers.safetensors"] == "diffusers"
    assert layouts["ti2v-peft.safetensors"] == layouts["ti2v-peft-bare.safetensors"] == "peft"
    keys = st.load_file(loras / "ti2v-peft-bare.safetensors")
    assert not any(k.startswith(("diffusion_model.", "transformer.")) or k.endswith(".alpha") for k in keys)
    assert all(k.startswith("diffusion_model.") for k in st.load_file(loras / "ti2v-peft.safetensors"))
    assert all(k.startswith("transformer.") for k in st.load_file(loras / "ti2v-diffusers.safetensors"))
    official = st.load_file(loras / "ti2v-official.safetensors")
    assert any(k.endswith(".diff") for k in official) and any(k.endswith(".diff_b") for k in official)
    assert all(k in st.load_file(loras / "partial.safetensors") for k in UNMATCHED_KEYS)
    ti2v = bundle_shapes(tmp_path / "tiny-ti2v")
    for name in ("ti2v-official", "ti2v-peft", "ti2v-peft-bare", "ti2v-diffusers"):
        lora.read_lora(loras / f"{name}.safetensors", ti2v)
    for name, comp in (("t2v-moe-high", "dit_high_noise"), ("t2v-moe-low", "dit_low_noise")):
        lora.read_lora(loras / f"{name}.safetensors", bundle_shapes(tmp_path / "tiny-t2v-moe", comp))
    with pytest.raises(ValueError, match="does not fit"):
        lora.read_lora(loras / OTHER_FAMILY, ti2v)
    with pytest.raises(ValueError, match="match no parameter"):
        lora.read_lora(loras / "partial.safetensors", ti2v)
    light = mf.read_yaml(tmp_path / "tiny-ti2v-lightning" / "wanrt.yaml")
    plain = mf.read_yaml(tmp_path / "tiny-ti2v" / "wanrt.yaml")
    assert light["sampling"] == dict(plain["sampling"], sampler="lightning", steps=4, shift=5.0,
                                     guide_scale=[1.0, 1.0])
    base = wt.component_state_dict(tmp_path / "tiny-ti2v", plain["components"]["dit"])
    baked = wt.component_state_dict(tmp_path / "tiny-ti2v-lightning", light["components"]["dit"])
    want = lora.apply_loras(base, [(loras / "ti2v-official.safetensors", 1.0)])
    assert all(torch.equal(baked[k], want[k]) for k in base)
    docs = {n: mf.read_yaml(tmp_path / n / "wanrt.yaml") for n in ("tiny-ti2v", "tiny-t2v-moe", "tiny-i2v-moe")}
    assert {d["config_name"] for d in docs.values()} == set(docs)
    assert len({d["tokenizer"]["sha256"] for d in docs.values()}) == 1  # one shared tokenizer
    for n, d in docs.items():
        assert all(c["dtype"] == "fp32" for c in d["components"].values())
        for c in d["components"].values():
            assert _sha(tmp_path / n / c["file"]) == c["sha256"]
    before = _sha(tmp_path / "tiny-ti2v" / "wanrt.yaml")
    capsys.readouterr()
    assert main(["tiny-bundles", "--out", str(tmp_path)]) == 1
    assert "already exists" in capsys.readouterr().err
    assert _sha(tmp_path / "tiny-ti2v" / "wanrt.yaml") == before


# ----------------------------------------------------------------------------- LoRA baking

def _moe_loras(tmp_path):
    from wanrt_export.lora_synth import write_synth_lora
    shapes = {n: tuple(p.shape) for n, p in ex.build_module(get_config("tiny-t2v-moe"), "dit_low_noise",
                                                            device="meta").named_parameters()}
    return (write_synth_lora(tmp_path / "all.safetensors", shapes, "official", 4, seed=1),
            write_synth_lora(tmp_path / "high.safetensors", shapes, "diffusers", 2, seed=2))


@pytest.mark.parametrize("fmt", [2, 1])
def test_baked_export_equals_runtime_application(t2v_bundle, tokenizer, tmp_path, fmt):
    """Streamed (format 2) and module (format 1) paths both bake what lora.apply_loras gives."""
    from wanrt_export import lora
    f_all, f_high = _moe_loras(tmp_path)
    out = tmp_path / "baked"
    plan = {"dit_high_noise": [(f_all, 0.8), (f_high, 1.5)], "dit_low_noise": [(f_all, 0.8)]}
    doc = ex.export_random("tiny-t2v-moe", 3, out, "fp32", tokenizer, format_version=fmt, loras=plan)
    base_doc = mf.read_yaml(t2v_bundle / "wanrt.yaml")
    assert doc["sampling"] == base_doc["sampling"]
    for comp, entry in doc["components"].items():
        base = wt.component_state_dict(t2v_bundle, base_doc["components"][comp])
        got = wt.component_state_dict(out, entry)
        want = lora.apply_loras(base, plan[comp]) if comp in plan else base
        assert all(torch.equal(got[k], want[k]) for k in base), comp
        if comp in plan:
            assert not torch.equal(got["blocks.0.ffn.0.weight"], base["blocks.0.ffn.0.weight"])


def test_baked_bf16_streamed_equals_module_path(tmp_path):
    from wanrt_export.lora import LoraStack, module_shapes
    f_all, _ = _moe_loras(tmp_path)
    cfg = get_config("tiny-t2v-moe")
    rc = ex.RandomComponent(cfg, "dit_low_noise", 5, "bf16")
    module = rc()
    stack = LoraStack([(f_all, 0.7)], module_shapes(module))
    stack.apply_(module)
    wt.write_weights(module, tmp_path / "module.st", "dit_low_noise", "blocks")
    ex.write_random_weights(rc.meta(), rc.seed_value, tmp_path / "streamed.st", "dit_low_noise", "blocks",
                            stack.merged)
    assert (tmp_path / "module.st").read_bytes() == (tmp_path / "streamed.st").read_bytes()
    assert module.blocks[0].ffn[0].weight.dtype == torch.bfloat16


def test_lightning_preset_and_lora_cli(tmp_path, capsys):
    f_all, f_high = _moe_loras(tmp_path)
    out = tmp_path / "b"
    assert main(["export", "--random-weights", "--config", "tiny-t2v-moe", "--out", str(out),
                 "--lora", f"{f_all}:0.5", "--lora-high", str(f_high), "--sampling-preset", "lightning"]) == 0
    doc = mf.read_yaml(out / "wanrt.yaml")
    ref = mf.sampling(get_config("tiny-t2v-moe"))
    assert doc["sampling"] == dict(ref, sampler="lightning", steps=4, shift=5.0, guide_scale=[1.0, 1.0])
    assert doc["sampling"]["boundary"] == 0.875
    assert list(doc["sampling"]) == list(ref)            # no new keys
    # the same bundle from the API
    from wanrt_export import lora
    plain = tmp_path / "plain"
    ex.export_random("tiny-t2v-moe", 0, plain, "fp32")
    for comp, specs in (("dit_high_noise", [(f_all, 0.5), (f_high, 1.0)]), ("dit_low_noise", [(f_all, 0.5)])):
        base = wt.component_state_dict(plain, mf.read_yaml(plain / "wanrt.yaml")["components"][comp])
        got = wt.component_state_dict(out, doc["components"][comp])
        want = lora.apply_loras(base, specs)
        assert all(torch.equal(got[k], want[k]) for k in base), comp
    capsys.readouterr()
    # usage errors: high/low on a single DiT, a missing file; a misfit fails and leaves nothing
    for args in (["--config", "tiny-ti2v", "--lora-low", str(f_all)],
                 ["--config", "tiny-t2v-moe", "--lora", str(tmp_path / "missing.safetensors")],
                 ["--config", "tiny-t2v-moe", "--sampling-preset", "turbo"]):
        with pytest.raises(SystemExit) as e:
            main(["export", "--random-weights", "--out", str(tmp_path / "x"), *args])
        assert e.value.code == 2
    assert main(["export", "--random-weights", "--config", "tiny-ti2v", "--out", str(tmp_path / "x"),
                 "--lora", str(f_all)]) == 1
    assert "does not fit parameter" in capsys.readouterr().err
    assert not (tmp_path / "x").exists() and not _leftovers(tmp_path)
