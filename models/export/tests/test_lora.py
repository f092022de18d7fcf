"""LoRA reading and merging (lora.py) and the synthetic LoRA writer (lora_synth.py)."""
import pytest
import torch

from wanrt_export import lora
from wanrt_export import lora_synth as ls
from wanrt_export import safetensors_io as st
from wanrt_export.__main__ import main
from wanrt_export.configs import get_config
from wanrt_export.dit import WanModel
from wanrt_export.export import randomize_


@pytest.fixture(scope="module")
def model():
    return randomize_(WanModel(get_config("tiny-ti2v").dit), 5).eval()


@pytest.fixture(scope="module")
def state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.fixture(scope="module")
def shapes(model):
    return lora.module_shapes(model)


def _save(tmp_path, name, tensors):
    path = tmp_path / name
    st.save_file(tensors, path)
    return path


def _pairs(shapes, rank=4, seed=0):
    targets = ls.default_targets(shapes, "official")
    return ls.draw_pairs(shapes, targets, rank, float(rank), seed)


def _reference(state, pairs, diffs, strength, alpha, rank):
    """W + s * alpha / rank * up @ down (+ s * diff), in float64."""
    out = {}
    for k, w in state.items():
        acc = w.double()
        module = k[:-len(".weight")] if k.endswith(".weight") else None
        if module in pairs:
            up, down = pairs[module]
            delta = (up.double().flatten(1) @ down.double().flatten(1)).reshape(w.shape)
            acc = acc + strength * alpha / rank * delta
        if k in (diffs or {}):
            acc = acc + strength * diffs[k].double()
        out[k] = acc
    return out


# ----------------------------------------------------------------------------- merging

def test_merge_matches_the_formula_and_covers_conv_and_bare_parameters(tmp_path, state, shapes):
    pairs = _pairs(shapes)
    diffs = ls.draw_diffs(shapes, 3)
    path = _save(tmp_path, "a.safetensors", ls.encode(pairs, "official", 2.0, diffs))
    merged = lora.apply_loras(state, [(path, 0.7)])
    ref = _reference(state, pairs, diffs, 0.7, 2.0, 4)
    changed = [k for k in state if not torch.equal(merged[k], state[k])]
    assert "patch_embedding.weight" in changed                 # conv3d, 5-D
    assert "blocks.0.modulation" in changed and "blocks.1.ffn.2.bias" in changed
    assert "blocks.0.norm3.weight" in changed
    assert "head.head.weight" not in changed and "blocks.0.self_attn.q.bias" not in changed
    for k in state:
        assert merged[k].dtype == state[k].dtype
        assert torch.allclose(merged[k].double(), ref[k], rtol=0, atol=1e-6), k


@pytest.mark.parametrize("layout", ["official-noalpha", "peft", "peft-bare", "diffusers"])
def test_layouts_give_the_same_weights(tmp_path, state, shapes, layout):
    pairs = _pairs(shapes)
    base = _save(tmp_path, "official.safetensors", ls.encode(pairs, "official", 4.0))
    other = _save(tmp_path, f"{layout}.safetensors", ls.encode(pairs, layout, 4.0))
    a = lora.apply_loras(state, [(base, 0.9)])
    b = lora.apply_loras(state, [(other, 0.9)])
    assert all(torch.equal(a[k], b[k]) for k in state)
    assert lora.detect_layout(st.load_file(other)) == {"official-noalpha": "official",
                                                       "peft-bare": "peft"}.get(layout, layout)


def test_strength_zero_is_exact_and_alpha_absent_is_rank(tmp_path, state, shapes):
    pairs = _pairs(shapes, rank=8)
    noalpha = _save(tmp_path, "n.safetensors", ls.encode(pairs, "official-noalpha"))
    rank_alpha = _save(tmp_path, "r.safetensors", ls.encode(pairs, "official", 8.0))
    half = _save(tmp_path, "h.safetensors", ls.encode(pairs, "official", 4.0))
    zero = lora.apply_loras(state, [(noalpha, 0.0)])
    assert all(zero[k] is state[k] for k in state)
    a = lora.apply_loras(state, [(noalpha, 1.0)])
    b = lora.apply_loras(state, [(rank_alpha, 1.0)])
    c = lora.apply_loras(state, [(half, 2.0)])               # alpha/rank 1/2 at strength 2
    key = "blocks.1.cross_attn.v.weight"
    assert torch.equal(a[key], b[key]) and torch.equal(a[key], c[key])
    assert not torch.equal(a[key], state[key])


def test_stacking_adds_each_lora_with_its_strength(tmp_path, state, shapes):
    p1, p2 = _pairs(shapes, 4, 1), _pairs(shapes, 2, 2)
    f1 = _save(tmp_path, "1.safetensors", ls.encode(p1, "peft", 3.0))
    f2 = _save(tmp_path, "2.safetensors", ls.encode(p2, "diffusers"))
    merged = lora.apply_loras(state, [(f1, 0.5), (f2, -1.25)])
    r1 = _reference(state, p1, None, 0.5, 3.0, 4)
    for k in state:
        want = r1[k]
        module = k[:-len(".weight")]
        if module in p2:
            up, down = p2[module]
            want = want - 1.25 * (up.double().flatten(1) @ down.double().flatten(1)).reshape(want.shape)
        assert torch.allclose(merged[k].double(), want, rtol=0, atol=1e-6), k


def test_module_and_state_dict_appliers_agree(tmp_path, state, shapes):
    path = ls.write_synth_lora(tmp_path / "s.safetensors", shapes, "official", 4, seed=9)
    m = WanModel(get_config("tiny-ti2v").dit)
    m.load_state_dict(state)
    changed = lora.apply_loras_(m, [(path, 0.6)])
    merged = lora.apply_loras(state, [(path, 0.6)])
    assert len(changed) == 27
    for k, v in m.state_dict().items():
        assert torch.equal(v, merged[k]), k


def test_bf16_parameters_merge_in_float32(tmp_path, state, shapes):
    path = ls.write_synth_lora(tmp_path / "s.safetensors", shapes, "official", 4, seed=9)
    half = {k: v.to(torch.bfloat16) for k, v in state.items()}
    merged = lora.apply_loras(half, [(path, 1.0)])
    want = lora.apply_loras({k: v.float() for k, v in half.items()}, [(path, 1.0)])
    for k in half:
        assert merged[k].dtype == torch.bfloat16
        assert torch.equal(merged[k], want[k].to(torch.bfloat16))


# ----------------------------------------------------------------------------- names

@pytest.mark.parametrize("theirs,ours", [
    ("blocks.3.attn1.to_q", "blocks.3.self_attn.q"), ("blocks.3.attn1.to_out.0", "blocks.3.self_attn.o"),
    ("blocks.0.attn2.to_k", "blocks.0.cross_attn.k"), ("blocks.0.attn2.to_v", "blocks.0.cross_attn.v"),
    ("blocks.1.attn1.norm_q", "blocks.1.self_attn.norm_q"), ("blocks.1.attn2.norm_k", "blocks.1.cross_attn.norm_k"),
    ("blocks.2.ffn.net.0.proj", "blocks.2.ffn.0"), ("blocks.2.ffn.net.2", "blocks.2.ffn.2"),
    ("blocks.2.norm2", "blocks.2.norm3"), ("blocks.2.scale_shift_table", "blocks.2.modulation"),
    ("scale_shift_table", "head.modulation"), ("proj_out", "head.head"),
    ("condition_embedder.time_embedder.linear_1", "time_embedding.0"),
    ("condition_embedder.time_embedder.linear_2", "time_embedding.2"),
    ("condition_embedder.text_embedder.linear_1", "text_embedding.0"),
    ("condition_embedder.text_embedder.linear_2", "text_embedding.2"),
    ("condition_embedder.time_proj", "time_projection.1"), ("patch_embedding", "patch_embedding"),
])
def test_diffusers_names(theirs, ours):
    assert lora.diffusers_to_wan(theirs) == ours
    assert lora.wan_to_diffusers(ours) == theirs


def test_prefixes_and_suffixes():
    assert lora.split_key("diffusion_model.blocks.0.ffn.0.lora_down.weight") == ("blocks.0.ffn.0", "down")
    assert lora.split_key("base_model.model.blocks.0.ffn.0.lora_B.weight") == ("blocks.0.ffn.0", "up")
    assert lora.split_key("transformer.proj_out.lora_A.weight") == ("proj_out", "down")
    assert lora.split_key("blocks.0.modulation.diff") == ("blocks.0.modulation", "diff")
    assert lora.split_key("blocks.0.ffn.2.diff_b") == ("blocks.0.ffn.2", "diff")[:1] + ("diff_b",)
    assert lora.split_key("diffusion_model.head.head.alpha") == ("head.head", "alpha")
    assert lora.split_key("blocks.0.ffn.0.weight") == (None, None)


def test_diffusers_diffs_reach_norm3_and_modulations(tmp_path, state, shapes):
    g = torch.Generator().manual_seed(0)
    t = {"transformer.blocks.0.norm2.diff": torch.randn(64, generator=g),
         "transformer.blocks.1.scale_shift_table.diff": torch.randn(1, 6, 64, generator=g),
         "transformer.scale_shift_table.diff": torch.randn(1, 2, 64, generator=g),
         "transformer.proj_out.diff_b": torch.randn(shapes["head.head.bias"], generator=g)}
    merged = lora.apply_loras(state, [(_save(tmp_path, "d.safetensors", t), 1.0)])
    for key, target in (("transformer.blocks.0.norm2.diff", "blocks.0.norm3.weight"),
                        ("transformer.blocks.1.scale_shift_table.diff", "blocks.1.modulation"),
                        ("transformer.scale_shift_table.diff", "head.modulation"),
                        ("transformer.proj_out.diff_b", "head.head.bias")):
        assert torch.equal(merged[target], state[target] + t[key])


# ----------------------------------------------------------------------------- errors

def test_misfit_names_the_tensors_and_both_shapes(tmp_path, state):
    path = ls.write_synth_lora(tmp_path / "other.safetensors", ls.other_family_shapes(), "official", 4)
    with pytest.raises(ValueError) as e:
        lora.apply_loras(state, [(path, 1.0)])
    msg = str(e.value)
    assert "blocks.0.self_attn.q.weight' [64, 64]" in msg
    assert "diffusion_model.blocks.0.self_attn.q.lora_up.weight' [96, 4]" in msg
    assert "diffusion_model.blocks.0.self_attn.q.lora_down.weight' [4, 96]" in msg
    bad = _save(tmp_path, "bad.safetensors", {"blocks.0.norm3.diff": torch.zeros(65)})
    with pytest.raises(ValueError, match=r"'blocks.0.norm3.weight' \[64\].*'blocks.0.norm3.diff' \[65\]"):
        lora.apply_loras(state, [(bad, 1.0)])


def test_unmatched_keys_raise_unless_partial(tmp_path, state, shapes):
    extra = {k: torch.zeros(4, 64) for k in ls.UNMATCHED_KEYS}
    path = ls.write_synth_lora(tmp_path / "p.safetensors", shapes, "official", 4, extra=extra)
    with pytest.raises(ValueError) as e:
        lora.apply_loras(state, [(path, 1.0)])
    assert "2 LoRA tensors match no parameter" in str(e.value)
    assert all(k in str(e.value) for k in ls.UNMATCHED_KEYS)
    full = ls.write_synth_lora(tmp_path / "f.safetensors", shapes, "official", 4)
    a = lora.apply_loras(state, [(path, 1.0)], allow_partial=True)
    b = lora.apply_loras(state, [(full, 1.0)])
    assert all(torch.equal(a[k], b[k]) for k in state)
    stack = lora.LoraStack([(path, 1.0)], shapes, allow_partial=True)
    assert sorted(stack.unmatched) == sorted(ls.UNMATCHED_KEYS)
    # unknown suffixes and diffusers names without a counterpart are unmatched too
    odd = _save(tmp_path, "odd.safetensors", {"blocks.0.ffn.0.weight": torch.zeros(1),
                                              "blocks.0.self_attn.q.lora_down.weight": torch.zeros(4, 64),
                                              "blocks.0.self_attn.q.lora_up.weight": torch.zeros(64, 4)})
    with pytest.raises(ValueError, match="blocks.0.ffn.0.weight"):
        lora.apply_loras(state, [(odd, 1.0)])
    nothing = _save(tmp_path, "none.safetensors", {"x.lora_down.weight": torch.zeros(4, 3),
                                                   "x.lora_up.weight": torch.zeros(3, 4)})
    with pytest.raises(ValueError, match="no tensor of this LoRA matches"):
        lora.apply_loras(state, [(nothing, 1.0)], allow_partial=True)


def test_half_pairs_and_bad_alpha_raise(tmp_path, state):
    lone = _save(tmp_path, "lone.safetensors", {"blocks.0.ffn.0.lora_A.weight": torch.zeros(4, 64)})
    with pytest.raises(ValueError, match="no matching lora_up"):
        lora.apply_loras(state, [(lone, 1.0)])
    alpha = _save(tmp_path, "alpha.safetensors", {"blocks.0.ffn.0.lora_A.weight": torch.zeros(4, 64),
                                                  "blocks.0.ffn.0.lora_B.weight": torch.zeros(128, 4),
                                                  "blocks.0.ffn.0.alpha": torch.zeros(2)})
    with pytest.raises(ValueError, match="must be a scalar"):
        lora.apply_loras(state, [(alpha, 1.0)])
    rank = _save(tmp_path, "rank.safetensors", {"blocks.0.ffn.0.lora_A.weight": torch.zeros(4, 64),
                                                "blocks.0.ffn.0.lora_B.weight": torch.zeros(128, 3)})
    with pytest.raises(ValueError, match="is not the rank 4"):
        lora.apply_loras(state, [(rank, 1.0)])


def test_loras_per_expert_and_arguments():
    moe = ("dit_high_noise", "dit_low_noise")
    plan = lora.loras_per_expert(moe, [("a", 1.0, "all"), ("h", 0.5, "high"), ("l", 2.0, "low")])
    assert plan == {"dit_high_noise": [("a", 1.0), ("h", 0.5)], "dit_low_noise": [("a", 1.0), ("l", 2.0)]}
    assert lora.loras_per_expert(("dit",), [("a", 1.0, "all")]) == {"dit": [("a", 1.0)]}
    for which in ("high", "low", "middle"):
        with pytest.raises(ValueError):
            lora.loras_per_expert(("dit",), [("a", 1.0, which)])
    assert lora.parse_lora_arg("x.safetensors") == ("x.safetensors", 1.0)
    assert lora.parse_lora_arg("x.safetensors:0.5") == ("x.safetensors", 0.5)
    assert lora.parse_lora_arg("C:/dir/x.safetensors") == ("C:/dir/x.safetensors", 1.0)
    assert lora.parse_lora_arg("a:b.safetensors:-1") == ("a:b.safetensors", -1.0)


# ----------------------------------------------------------------------------- synthetic files

def test_synth_layout_keys_and_determinism(shapes):
    official = ls.synth_lora(shapes, "official", 4, seed=1)
    assert torch.equal(official["diffusion_model.blocks.0.self_attn.q.alpha"], torch.tensor(2.0))
    assert official["diffusion_model.patch_embedding.lora_down.weight"].shape == (4, 48, 1, 2, 2)
    assert official["diffusion_model.patch_embedding.lora_up.weight"].shape == (64, 4, 1, 1, 1)
    for i in range(2):
        assert f"diffusion_model.blocks.{i}.norm3.diff" in official
        assert f"diffusion_model.blocks.{i}.ffn.2.diff_b" in official
        assert f"diffusion_model.blocks.{i}.modulation.diff" in official
    peft_bare = ls.synth_lora(shapes, "peft-bare", 4, seed=1)
    assert all(k.startswith("blocks.") and ".lora_" in k for k in peft_bare)
    diffusers = ls.synth_lora(shapes, "diffusers", 4, seed=1)
    assert "transformer.blocks.1.ffn.net.0.proj.lora_A.weight" in diffusers
    assert not any(k.endswith(".alpha") for k in diffusers)
    again = ls.synth_lora(shapes, "official", 4, seed=1)
    assert all(torch.equal(official[k], again[k]) for k in official)
    other = ls.synth_lora(shapes, "official", 4, seed=2)
    assert not torch.equal(official["diffusion_model.blocks.0.ffn.0.lora_up.weight"],
                           other["diffusion_model.blocks.0.ffn.0.lora_up.weight"])


def test_synth_effect_is_moderate(tmp_path, state, shapes):
    path = ls.write_synth_lora(tmp_path / "s.safetensors", shapes, "peft", 4, seed=3)
    merged = lora.apply_loras(state, [(path, 1.0)])
    for k in ("blocks.0.self_attn.q.weight", "blocks.1.ffn.2.weight"):
        rel = ((merged[k] - state[k]).norm() / state[k].norm()).item()
        assert 0.1 < rel < 0.5, (k, rel)


def test_synth_lora_cli(tmp_path):
    assert main(["export", "--random-weights", "--config", "tiny-t2v-moe", "--out", str(tmp_path / "b")]) == 0
    out = tmp_path / "l.safetensors"
    assert main(["synth-lora", "--bundle", str(tmp_path / "b"), "--component", "dit_low_noise",
                 "--layout", "peft", "--rank", "2", "--alpha", "3", "--seed", "4", "--out", str(out)]) == 0
    t = st.load_file(out)
    assert t["diffusion_model.blocks.0.ffn.0.lora_A.weight"].shape == (2, 64)
    assert t["diffusion_model.blocks.0.ffn.0.alpha"].item() == 3.0
    assert st.read_metadata(out) == {ls.META_LAYOUT: "peft"}
    with pytest.raises(SystemExit):
        main(["synth-lora", "--bundle", str(tmp_path / "b"), "--layout", "kohya", "--rank", "2",
              "--out", str(out)])
    assert main(["synth-lora", "--bundle", str(tmp_path / "b"), "--layout", "peft", "--rank", "2",
                 "--out", str(out)]) == 1                   # no component "dit"
