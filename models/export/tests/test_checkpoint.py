"""Official checkpoint layout: export through the CLI, output parity, strict loading,
and acceptance of the real official names/shapes (.tsv) with config inference."""
import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import torch

from conftest import load_tsv
from wanrt_export import checkpoint as ck
from wanrt_export import export as ex
from wanrt_export import manifest as mf
from wanrt_export import weights as wt
from wanrt_export.__main__ import main
from wanrt_export.configs import T5Config, get_config
from wanrt_export.safetensors_io import TensorInfo, save_sharded
from wanrt_export.tokenizer import train_tiny_tokenizer

# tiny config standing in for each real model (same experts, VAE version, model_type)
TINY_OF = {"ti2v-5b": "tiny-ti2v", "t2v-a14b": "tiny-t2v-moe", "i2v-a14b": "tiny-i2v-moe"}


def _round_bf16_(module):
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(p.bfloat16().float())
    return module


def _dit_config_json(cfg) -> dict:
    d = cfg.dit
    return {"_class_name": "WanModel", "_diffusers_version": "0.33.0", "dim": d.dim, "eps": d.eps,
            "ffn_dim": d.ffn_dim, "freq_dim": d.freq_dim, "in_dim": d.in_dim, "model_type": d.model_type,
            "num_heads": d.num_heads, "num_layers": d.num_layers, "out_dim": d.out_dim, "text_len": d.text_len}


def write_official(root: Path, model: str, tokenizer: Path, seed: int = 11, dit_bf16: bool = False):
    """An official-layout directory holding a tiny model; returns the source modules (fp32,
    with the values exactly as stored: T5 in bf16 like the official file)."""
    cfg = get_config(TINY_OF[model])
    mods = {c: ex.random_module(cfg, c, seed) for c in mf.component_names(cfg)}
    for expert in cfg.experts:
        folder = root / ck.EXPERT_DIRS[expert] if expert in ck.EXPERT_DIRS else root
        folder.mkdir(parents=True, exist_ok=True)
        if dit_bf16:
            _round_bf16_(mods[expert])
        sd = {k: (v.bfloat16() if dit_bf16 else v) for k, v in mods[expert].state_dict().items()}
        save_sharded(sd, folder, num_shards=3)
        (folder / "config.json").write_text(json.dumps(_dit_config_json(cfg), indent=2))
    _round_bf16_(mods["text_encoder"])
    torch.save({k: v.bfloat16() for k, v in mods["text_encoder"].state_dict().items()}, root / ck.T5_FILE)
    torch.save(mods["vae"].state_dict(), root / ck.VAE_FILES[cfg.vae.version])
    tok_dir = root / "google" / "umt5-xxl"
    tok_dir.mkdir(parents=True)
    shutil.copyfile(tokenizer, tok_dir / "spiece.model")
    (tok_dir / "tokenizer_config.json").write_text("{}")  # other tokenizer files are ignored
    (root / "configuration.json").write_text('{"framework": "Pytorch", "task": "text-to-video"}')
    return mods


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    return train_tiny_tokenizer(tmp_path_factory.mktemp("tok"))


@pytest.fixture(scope="module")
def ti2v_ckpt(tmp_path_factory, tokenizer):
    root = tmp_path_factory.mktemp("ckpt") / "Wan2.2-TI2V-5B"
    return root, write_official(root, "ti2v-5b", tokenizer)


def _inputs(cfg, g):
    ids = torch.randint(3, cfg.t5.vocab_size, (1, 10), generator=g)
    mask = torch.ones(1, 10, dtype=torch.long)
    mask[:, 7:] = 0
    x = torch.randn(1, cfg.dit.in_dim, 2, 4, 4, generator=g)
    ctx = torch.randn(1, 7, cfg.t5.dim, generator=g)
    z = torch.randn(1, cfg.vae.z_dim, 2, 2, 2, generator=g)
    video = torch.rand(1, 3, 5, 16 * cfg.vae.patch, 16 * cfg.vae.patch, generator=g) * 2 - 1
    return ids, mask, x, ctx, z, video


def _check_bundle_matches(out: Path, mods, cfg):
    g = torch.Generator().manual_seed(5)
    ids, mask, x, ctx, z, video = _inputs(cfg, g)
    entries = mf.read_yaml(out / "wanrt.yaml")["components"]
    t5 = wt.load_component(out, entries["text_encoder"])
    assert torch.equal(t5(ids, mask), mods["text_encoder"](ids, mask))
    for expert in cfg.experts:
        dit = wt.load_component(out, entries[expert])
        for t in (torch.tensor([999.0]), torch.full((1, 8), 250.0)):
            assert torch.equal(dit(x, t, ctx), mods[expert](x, t, ctx)), expert
    vae = wt.load_component(out, entries["vae"])
    torch.testing.assert_close(vae.decode(z), mods["vae"].decode(z), rtol=0, atol=1e-6)
    torch.testing.assert_close(vae.encode(video), mods["vae"].encode(video), rtol=0, atol=1e-6)


def test_ti2v_checkpoint_export_through_cli(ti2v_ckpt, tmp_path, capsys):
    root, mods = ti2v_ckpt
    out = tmp_path / "bundle"
    base = ["export", "--checkpoint-dir", str(root), "--model", "ti2v-5b", "--out", str(out), "--dtype", "fp32"]
    assert main(base) == 1  # tiny sizes are not the official configuration
    err = capsys.readouterr().err
    assert "--allow-nonstandard" in err and "dit.dim = 64 (the official value is 3072)" in err
    assert not out.exists()

    assert main(base + ["--allow-nonstandard"]) == 0
    doc = mf.read_yaml(out / "wanrt.yaml")
    cfg = get_config("tiny-ti2v")
    assert doc["model_id"] == "wan2.2-ti2v-5b-nonstandard" and doc["config_name"] == "ti2v-5b"
    assert doc["architecture"]["text_encoder"] == dataclasses.asdict(cfg.t5)  # inferred from shapes
    arch_dit = dict(doc["architecture"]["dit"])
    assert arch_dit.pop("head_dim") == 32 and arch_dit.pop("patch_size") == [1, 2, 2]
    assert arch_dit == {k: v for k, v in dataclasses.asdict(cfg.dit).items() if k != "patch_size"}
    v = doc["architecture"]["vae"]
    assert (v["version"], v["dim"], v["dec_dim"], v["z_dim"]) == ("2.2", 8, 16, 48)
    assert doc["sampling"]["frames"] == 121  # sampling defaults come from the named model
    assert list(doc["components"]) == ["text_encoder", "dit", "vae"]
    assert (out / "tokenizer" / "spiece.model").read_bytes() == (root / ck.TOKENIZER_PATH).read_bytes()
    _check_bundle_matches(out, mods, cfg)


def test_a14b_checkpoint_export_bf16_shards(tmp_path, tokenizer):
    root = tmp_path / "Wan2.2-I2V-A14B"
    mods = write_official(root, "i2v-a14b", tokenizer, seed=12, dit_bf16=True)
    assert (root / "high_noise_model" / "diffusion_pytorch_model-00003-of-00003.safetensors").is_file()
    out = tmp_path / "bundle"
    assert main(["export", "--checkpoint-dir", str(root), "--model", "i2v-a14b", "--out", str(out),
                 "--dtype", "fp32", "--allow-nonstandard"]) == 0
    doc = mf.read_yaml(out / "wanrt.yaml")
    assert list(doc["components"]) == ["text_encoder", "dit_high_noise", "dit_low_noise", "vae"]
    assert doc["components"]["dit_high_noise"]["expert"] == "high_noise"
    assert doc["architecture"]["dit"]["in_dim"] == 36 and doc["architecture"]["vae"]["version"] == "2.1"
    _check_bundle_matches(out, mods, get_config("tiny-i2v-moe"))
    # the two experts really are the two folders, not one of them twice
    hi = wt.component_state_dict(out, doc["components"]["dit_high_noise"])["blocks.0.ffn.0.weight"]
    assert torch.equal(hi, mods["dit_high_noise"].blocks[0].ffn[0].weight)


def test_default_dtype_bf16_keeps_fp32_patterns(ti2v_ckpt, tmp_path):
    root, mods = ti2v_ckpt
    out = tmp_path / "bf16"
    assert main(["export", "--checkpoint-dir", str(root), "--model", "ti2v-5b", "--out", str(out),
                 "--allow-nonstandard"]) == 0
    doc = mf.read_yaml(out / "wanrt.yaml")
    assert doc["components"]["dit"]["dtype"] == "bf16" and doc["components"]["vae"]["dtype"] == "fp32"
    sd = wt.component_state_dict(out, doc["components"]["dit"])
    assert sd["blocks.0.ffn.0.weight"].dtype == torch.bfloat16
    assert sd["blocks.0.modulation"].dtype == torch.float32
    assert torch.equal(sd["blocks.0.modulation"], mods["dit"].blocks[0].modulation.detach())


# ---------------------------------------------------------------------------------------------
# strictness


@pytest.fixture
def broken(ti2v_ckpt, tmp_path):
    root = tmp_path / "ckpt"
    shutil.copytree(ti2v_ckpt[0], root)
    return root


def _load(root):
    return ck.load_official(root, "ti2v-5b", "fp32", allow_nonstandard=True)


def _rewrite_dit(root, edit):
    from wanrt_export.safetensors_io import load_sharded
    index = root / "diffusion_pytorch_model.safetensors.index.json"
    sd = load_sharded(index)
    for p in root.glob("diffusion_pytorch_model*"):
        p.unlink()
    edit(sd)
    save_sharded(sd, root, num_shards=3)


def test_missing_tensor_is_named(broken):
    _rewrite_dit(broken, lambda sd: sd.pop("blocks.1.ffn.2.bias"))
    with pytest.raises(ck.CheckpointError, match=r"1 problem\):\n.*missing tensor 'blocks.1.ffn.2.bias'"):
        _load(broken)


def test_unexpected_tensor_is_named(broken):
    _rewrite_dit(broken, lambda sd: sd.__setitem__("blocks.0.img_emb.weight", torch.zeros(2)))
    with pytest.raises(ck.CheckpointError, match="unexpected tensor 'blocks.0.img_emb.weight'"):
        _load(broken)


def test_wrong_shape_is_named(broken):
    sd = torch.load(broken / ck.T5_FILE)
    sd["blocks.0.ffn.fc2.weight"] = sd["blocks.0.ffn.fc2.weight"].t().contiguous()
    torch.save(sd, broken / ck.T5_FILE)
    with pytest.raises(ck.CheckpointError) as e:
        _load(broken)
    assert "'blocks.0.ffn.fc2.weight' has shape [128, 64], expected [64, 128]" in str(e.value)
    assert ck.T5_FILE in str(e.value)


def test_many_problems_are_counted(broken):
    def drop(sd):
        for k in [k for k in sd if k.startswith("blocks.1.")][:15]:
            del sd[k]
    _rewrite_dit(broken, drop)
    sd = torch.load(broken / ck.VAE_FILES["2.2"])
    del sd["decoder.head.2.bias"]
    torch.save(sd, broken / ck.VAE_FILES["2.2"])
    with pytest.raises(ck.CheckpointError) as e:
        _load(broken)
    msg = str(e.value)
    assert "16 problems" in msg and "... and 6 more" in msg
    assert msg.count("missing tensor") == ck.MAX_REPORTED


def test_layout_errors(broken, tmp_path, tokenizer):
    cfg_path = broken / "config.json"
    good = json.loads(cfg_path.read_text())
    cfg_path.write_text(json.dumps(dict(good, model_type="t2v")))
    with pytest.raises(ck.CheckpointError, match="model_type 't2v' but ti2v-5b needs 'ti2v'"):
        _load(broken)
    cfg_path.write_text(json.dumps(dict(good, _class_name="WanTransformer3DModel")))
    with pytest.raises(ck.CheckpointError, match="diffusers"):
        _load(broken)
    cfg_path.write_text(json.dumps({k: v for k, v in good.items() if k != "ffn_dim"}))
    with pytest.raises(ck.CheckpointError, match="missing keys.*ffn_dim"):
        _load(broken)
    cfg_path.write_text(json.dumps(good))

    shard = broken / "diffusion_pytorch_model-00002-of-00003.safetensors"
    data = shard.read_bytes()
    shard.write_bytes(data[:-100])
    with pytest.raises(ck.CheckpointError, match="truncated"):
        _load(broken)
    shard.write_bytes(data)

    (broken / ck.VAE_FILES["2.2"]).rename(broken / ck.VAE_FILES["2.1"])
    with pytest.raises(ck.CheckpointError, match=r"Wan2.2_VAE.pth not found \(Wan2.1_VAE.pth is there"):
        _load(broken)
    # a Wan 2.1 VAE under the 2.2 name is recognised from its shapes
    other = tmp_path / "a14b"
    write_official(other, "t2v-a14b", tokenizer)
    shutil.copyfile(other / ck.VAE_FILES["2.1"], broken / ck.VAE_FILES["2.2"])
    with pytest.raises(ck.CheckpointError, match="Wan 2.1 VAE but the model needs the Wan 2.2 VAE"):
        _load(broken)


def test_a14b_layout_errors(tmp_path, tokenizer):
    root = tmp_path / "a14b"
    write_official(root, "t2v-a14b", tokenizer)
    cfg_path = root / "low_noise_model" / "config.json"
    good = json.loads(cfg_path.read_text())
    cfg_path.write_text(json.dumps(dict(good, num_layers=3)))
    with pytest.raises(ck.CheckpointError, match="the experts must match"):
        ck.load_official(root, "t2v-a14b", allow_nonstandard=True)
    cfg_path.write_text(json.dumps(good))
    shutil.rmtree(root / "high_noise_model")
    with pytest.raises(ck.CheckpointError, match="high_noise_model: no diffusion_pytorch_model"):
        ck.load_official(root, "t2v-a14b", allow_nonstandard=True)
    with pytest.raises(ck.CheckpointError, match="unknown model"):
        ck.load_official(root, "t2v-14b")


# ---------------------------------------------------------------------------------------------
# the real official names and shapes (from the .tsv files) are accepted exactly


class _TsvSource:
    """Stands in for a safetensors source using the official name/shape list."""

    def __init__(self, rows):
        self.path = Path("<tsv>")
        self.infos = {n: TensorInfo(n, "BF16", s, 0, 0) for n, s in rows}

    def keys(self):
        return list(self.infos)

    def __contains__(self, name):
        return name in self.infos

    def info(self, name):
        return self.infos[name]


def _meta_sd(rows):
    return {n: torch.empty(s, device="meta", dtype=torch.bfloat16) for n, s in rows}


@pytest.mark.parametrize("model,tsv,config_json", [
    ("ti2v-5b", "dit_ti2v_5b.tsv", {"dim": 3072, "ffn_dim": 14336, "in_dim": 48, "out_dim": 48, "num_heads": 24,
                                    "num_layers": 30, "model_type": "ti2v", "freq_dim": 256, "eps": 1e-6,
                                    "text_len": 512}),
    ("t2v-a14b", "dit_t2v_a14b_expert.tsv", {"dim": 5120, "ffn_dim": 13824, "in_dim": 16, "out_dim": 16,
                                             "num_heads": 40, "num_layers": 40, "model_type": "t2v"}),
    ("i2v-a14b", "dit_i2v_a14b_expert.tsv", {"dim": 5120, "ffn_dim": 13824, "in_dim": 36, "out_dim": 16,
                                             "num_heads": 40, "num_layers": 40, "model_type": "i2v"}),
])
def test_official_dit_names_and_config(tmp_path, model, tsv, config_json):
    real = get_config(model)
    (tmp_path / "config.json").write_text(json.dumps(dict(config_json, _class_name="WanModel")))
    src = _TsvSource(load_tsv(tsv))
    dit_cfg = ck.read_dit_config(tmp_path, src)
    assert dit_cfg == real.dit
    given = {n: (i.shape, True) for n, i in src.infos.items()}
    assert ck.check_tensors("tsv", ex.build_module(real, real.experts[0], device="meta"), given) == []


def test_official_t5_and_vae_names_and_inference():
    rows = load_tsv("t5_umt5_xxl_encoder.tsv")
    sd = _meta_sd(rows)
    assert ck.infer_t5_config(sd, Path("t5")) == T5Config()
    real = get_config("t2v-a14b")
    given = {n: (tuple(s), True) for n, s in rows}
    assert ck.check_tensors("t5", ex.build_module(real, "text_encoder", device="meta"), given) == []
    for model, tsv in (("t2v-a14b", "vae_wan2_1.tsv"), ("ti2v-5b", "vae_wan2_2.tsv")):
        real = get_config(model)
        rows = load_tsv(tsv)
        vcfg = ck.infer_vae_config(_meta_sd(rows), Path(tsv), real.vae)
        assert vcfg == real.vae, tsv
        given = {n: (tuple(s), True) for n, s in rows}
        assert ck.check_tensors(tsv, ex.build_module(real, "vae", device="meta"), given) == [], tsv
    # and the checker does notice a deviation from the official list
    given.pop(rows[5][0])
    problems = ck.check_tensors("x", ex.build_module(real, "vae", device="meta"), given)
    assert problems == [f"x: missing tensor '{rows[5][0]}' (expected shape {ck._fmt_shape(rows[5][1])})"]

