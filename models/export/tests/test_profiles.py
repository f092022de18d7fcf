"""Planning profiles: committed files are current, and their sizes match the published and
.tsv-derived parameter counts of the real models."""
import pytest
import yaml

from conftest import REPO_ROOT, load_tsv
from wanrt_export.__main__ import main
from wanrt_export.configs import REAL_NAMES, TINY_NAMES, get_config

PROFILES = REPO_ROOT / "models" / "profiles"
FILES = {"ti2v-5b": "wan2.2-ti2v-5b.yaml", "t2v-a14b": "wan2.2-t2v-a14b.yaml", "i2v-a14b": "wan2.2-i2v-a14b.yaml"}
# docs/wan22.md section 1 (parameter counts)
DIT_TOTAL = {"ti2v-5b": 4_999_787_712, "t2v-a14b": 14_288_491_584, "i2v-a14b": 14_288_901_184}
DIT_BLOCK = {"ti2v-5b": 163_656_704, "t2v-a14b": 351_394_304, "i2v-a14b": 351_394_304}
T5_TOTAL = 5_680_910_336
DIT_TSV = {"ti2v-5b": "dit_ti2v_5b.tsv", "t2v-a14b": "dit_t2v_a14b_expert.tsv", "i2v-a14b": "dit_i2v_a14b_expert.tsv"}
VAE_TSV = {"ti2v-5b": "vae_wan2_2.tsv", "t2v-a14b": "vae_wan2_1.tsv", "i2v-a14b": "vae_wan2_1.tsv"}


def _numel(shape):
    n = 1
    for s in shape:
        n *= s
    return n


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory):
    out = tmp_path_factory.mktemp("profiles")
    assert main(["profiles", "--out", str(out)]) == 0
    return out


def test_committed_profiles_are_current(regenerated):
    assert sorted(p.name for p in regenerated.iterdir()) == sorted(FILES.values())
    for name in FILES.values():
        committed = PROFILES / name
        assert committed.is_file(), f"{committed} missing: run `python3 -m wanrt_export profiles --out ../profiles`"
        assert committed.read_bytes() == (regenerated / name).read_bytes(), \
            f"{name} is stale: run `python3 -m wanrt_export profiles --out ../profiles` in models/export"


@pytest.mark.parametrize("model", REAL_NAMES)
def test_profile_sizes(regenerated, model):
    raw = (regenerated / FILES[model]).read_text(encoding="utf-8")
    assert "!!" not in raw
    doc = yaml.safe_load(raw)
    cfg = get_config(model)
    assert doc["format_version"] == 1 and doc["profile"] is True
    assert doc["model_id"] == cfg.model_id and doc["config_name"] == model and doc["task"] == cfg.task
    assert "file" not in doc["tokenizer"] and "sha256" not in doc["tokenizer"]
    assert doc["tokenizer"]["text_len"] == 512
    comps = doc["components"]
    assert list(comps) == ["text_encoder", *cfg.experts, "vae"]
    for entry in comps.values():
        assert "file" not in entry and "sha256" not in entry
        assert entry["non_block_bytes"] + sum(entry["block_bytes"]) == entry["bytes"]

    d = cfg.dit.dim
    # fp32-kept per DiT block: modulation (6 d), norm3 weight+bias (2 d), four q/k RMSNorm weights (4 d)
    kept_block = 12 * d
    dit_rows = load_tsv(DIT_TSV[model])
    for expert in cfg.experts:
        e = comps[expert]
        assert e["dtype"] == "bf16"
        assert e["parameters"] == DIT_TOTAL[model] == sum(_numel(s) for _, s in dit_rows)
        assert e["block_bytes"] == [2 * DIT_BLOCK[model] + 2 * kept_block] * cfg.dit.num_layers
        assert e["contract"]["num_blocks"] == cfg.dit.num_layers
        # every parameter counted once: 2 bytes each plus 2 more for each fp32-kept one
        kept = sum(_numel(s) for n, s in dit_rows
                   if n.startswith(("patch_embedding", "time_embedding", "time_projection", "head.modulation"))
                   or n.endswith(("modulation", "norm3.weight", "norm3.bias", "norm_q.weight", "norm_k.weight")))
        assert e["bytes"] == 2 * e["parameters"] + 2 * kept
    if len(cfg.experts) == 2:
        assert comps["dit_high_noise"]["expert"] == "high_noise" and comps["dit_low_noise"]["expert"] == "low_noise"

    t5 = comps["text_encoder"]
    t5_rows = load_tsv("t5_umt5_xxl_encoder.tsv")
    assert t5["parameters"] == T5_TOTAL == sum(_numel(s) for _, s in t5_rows)
    t5_kept = sum(_numel(s) for n, s in t5_rows if "norm" in n or "pos_embedding" in n)
    assert t5["bytes"] == 2 * T5_TOTAL + 2 * t5_kept and t5["dtype"] == "bf16"
    assert len(t5["block_bytes"]) == 24 and len(set(t5["block_bytes"])) == 1

    vae = comps["vae"]
    vae_params = sum(_numel(s) for _, s in load_tsv(VAE_TSV[model]))
    z = cfg.vae.z_dim
    assert vae["dtype"] == "fp32" and vae["parameters"] == vae_params
    assert vae["bytes"] == 4 * vae_params + 3 * 4 * z  # + mean/std/inv_std buffers
    assert vae["block_bytes"] == [] and vae["contract"]["kind"] == "vae"
    arch = doc["architecture"]
    assert arch["vae"]["stride"] == ([4, 16, 16] if model == "ti2v-5b" else [4, 8, 8])
    assert arch["dit"]["head_dim"] == 128 and arch["dit"]["in_dim"] == cfg.dit.in_dim
    assert doc["sampling"]["boundary"] == cfg.sampling.boundary


@pytest.mark.parametrize("name", REAL_NAMES + TINY_NAMES)
def test_manifest_describes_its_config_completely(name):
    """config_from_manifest inverts the manifest's architecture/sampling sections, so a bundle
    rebuilds exactly the modules it holds (the reference pipeline relies on this)."""
    from wanrt_export.manifest import architecture, component_names, config_from_manifest, sampling
    cfg = get_config(name)
    doc = {"architecture": architecture(cfg), "sampling": sampling(cfg), "config_name": cfg.name,
           "model_id": cfg.model_id, "task": cfg.task,
           "components": {c: {} for c in component_names(cfg)}}
    assert config_from_manifest(doc) == cfg
