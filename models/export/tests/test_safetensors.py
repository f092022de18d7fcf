"""safetensors reader/writer: round trips, byte layout, sharded index, corrupt files."""
import json
import struct

import numpy as np
import pytest
import torch

from wanrt_export import safetensors_io as st


def _sample_tensors():
    g = torch.Generator().manual_seed(0)
    return {
        "f32": torch.randn(3, 5, generator=g),
        "f16": torch.randn(4, generator=g).half(),
        "bf16": torch.randn(2, 3, 4, generator=g).bfloat16(),
        "f64": torch.randn(2, 2, generator=g).double(),
        "i64": torch.arange(-3, 4, dtype=torch.int64),
        "i32": torch.tensor([[1, -2], [3, 2 ** 30]], dtype=torch.int32),
        "i8": torch.tensor([-128, 0, 127], dtype=torch.int8),
        "u8": torch.tensor([0, 200, 255], dtype=torch.uint8),
        "bool": torch.tensor([True, False, True]),
        "scalar": torch.tensor(2.5),
        "empty": torch.zeros(0, 7),
        "noncontig": torch.arange(12, dtype=torch.float32).view(3, 4).t(),
    }


def test_round_trip_all_dtypes(tmp_path):
    tensors = _sample_tensors()
    path = tmp_path / "a.safetensors"
    st.save_file(tensors, path, metadata={"format": "pt", "note": "x"})
    back = st.load_file(path)
    assert list(back) == list(tensors)
    for name, t in tensors.items():
        assert back[name].dtype == t.dtype, name
        assert back[name].shape == t.shape, name
        assert torch.equal(back[name], t.contiguous()), name
    assert st.read_metadata(path) == {"format": "pt", "note": "x"}


def test_byte_layout_matches_the_spec(tmp_path):
    """Decode the file by hand: u64 LE header size, JSON header, LE data at data_offsets."""
    t = {"w": torch.tensor([1.0, -2.0], dtype=torch.float32), "b": torch.tensor([1.5], dtype=torch.bfloat16)}
    path = tmp_path / "b.safetensors"
    st.save_file(t, path)
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    assert (8 + n) % 8 == 0
    data = raw[8 + n:]
    assert header["w"] == {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}
    assert header["b"]["dtype"] == "BF16" and header["b"]["shape"] == [1]
    b0, b1 = header["w"]["data_offsets"]
    assert np.frombuffer(data[b0:b1], dtype="<f4").tolist() == [1.0, -2.0]
    b0, b1 = header["b"]["data_offsets"]
    # bf16 1.5 is the top half of float32 1.5 = 0x3FC00000
    assert struct.unpack("<H", data[b0:b1])[0] == 0x3FC0


def test_reads_a_handwritten_file(tmp_path):
    """A file written without our writer (unordered offsets, metadata, bf16)."""
    vals = np.array([0.25, 4.0], dtype="<f4")
    bf = (np.array([3.0], dtype="<f4").view("<u4") >> 16).astype("<u2")
    data = bf.tobytes() + vals.tobytes()
    header = {"__metadata__": {"k": "v"},
              "v": {"dtype": "F32", "shape": [1, 2], "data_offsets": [2, 10]},
              "h": {"dtype": "BF16", "shape": [], "data_offsets": [0, 2]}}
    hb = json.dumps(header).encode()
    path = tmp_path / "h.safetensors"
    path.write_bytes(struct.pack("<Q", len(hb)) + hb + data)
    with st.SafetensorsFile(path) as f:
        assert sorted(f.keys()) == ["h", "v"]
        assert f.metadata == {"k": "v"}
        assert f.info("v").shape == (1, 2)
        assert f.get("v").tolist() == [[0.25, 4.0]]
        h = f.get("h")
        assert h.dtype == torch.bfloat16 and h.shape == () and float(h) == 3.0


def test_sharded_round_trip(tmp_path):
    tensors = {f"blocks.{i}.w": torch.full((i + 1, 2), float(i)).bfloat16() for i in range(7)}
    index = st.save_sharded(tensors, tmp_path, num_shards=3)
    assert index.name == "diffusion_pytorch_model.safetensors.index.json"
    shards = sorted(p.name for p in tmp_path.glob("*.safetensors"))
    assert shards == st.shard_names("diffusion_pytorch_model", 3)
    assert shards[0] == "diffusion_pytorch_model-00001-of-00003.safetensors"
    meta = json.loads(index.read_text())
    assert meta["metadata"]["total_size"] == sum(t.numel() * 2 for t in tensors.values())
    assert len(set(meta["weight_map"].values())) == 3
    back = st.load_sharded(index)
    assert list(back) == list(tensors)
    for k in tensors:
        assert back[k].dtype == torch.bfloat16 and torch.equal(back[k], tensors[k])
    with st.ShardedSafetensors(index) as s:
        assert s.info("blocks.6.w").shape == (7, 2)
        assert s.file_of("blocks.0.w").name == shards[0]


def _expect(path, *fragments):
    with pytest.raises(st.SafetensorsError) as e:
        st.load_file(path)
    for frag in fragments:
        assert frag in str(e.value)
    assert str(path) in str(e.value)


def test_truncated_file(tmp_path):
    path = tmp_path / "t.safetensors"
    st.save_file({"a": torch.ones(4), "weight.x": torch.ones(100)}, path)
    raw = path.read_bytes()
    path.write_bytes(raw[:-10])
    _expect(path, "weight.x", "truncated")
    path.write_bytes(raw[:5])
    _expect(path, "too short")
    path.write_bytes(raw[:20])  # header length points past the end
    _expect(path, "header length")


def test_corrupt_header(tmp_path):
    path = tmp_path / "c.safetensors"

    def write(header_bytes, data=b""):
        path.write_bytes(struct.pack("<Q", len(header_bytes)) + header_bytes + data)

    write(b"{not json")
    _expect(path, "not valid JSON")
    write(b"[1, 2]")
    _expect(path, "not a JSON object")
    write(json.dumps({"x": {"dtype": "F17", "shape": [1], "data_offsets": [0, 4]}}).encode(), b"\0" * 4)
    _expect(path, "'x'", "unsupported dtype")
    write(json.dumps({"y": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}).encode(), b"\0" * 8)
    _expect(path, "'y'", "needs 8")
    write(json.dumps({"z": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}).encode(), b"\0" * 4)
    _expect(path, "'z'", "bad shape")
    write(json.dumps({"p": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                      "q": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}).encode(), b"\0" * 12)
    _expect(path, "overlap")
    write(json.dumps({"r": {"dtype": "F32", "shape": [1]}}).encode())
    _expect(path, "'r'", "data_offsets")


def test_sharded_index_errors(tmp_path):
    tensors = {"a": torch.ones(2), "b": torch.zeros(3), "c": torch.ones(1)}
    index = st.save_sharded(tensors, tmp_path, num_shards=2)
    meta = json.loads(index.read_text())

    meta_bad = dict(meta, weight_map=dict(meta["weight_map"], d="diffusion_pytorch_model-00002-of-00002.safetensors"))
    index.write_text(json.dumps(meta_bad))
    with pytest.raises(st.SafetensorsError, match="'d' is mapped"):
        st.load_sharded(index)

    wm = dict(meta["weight_map"])
    del wm["a"]
    index.write_text(json.dumps(dict(meta, weight_map=wm)))
    with pytest.raises(st.SafetensorsError, match="'a' is not mapped"):
        st.load_sharded(index)

    index.write_text(json.dumps(dict(meta, weight_map=dict(meta["weight_map"], a="missing.safetensors"))))
    with pytest.raises(st.SafetensorsError, match="shard 'missing.safetensors' is missing"):
        st.load_sharded(index)

    index.write_text("{}")
    with pytest.raises(st.SafetensorsError, match="weight_map"):
        st.load_sharded(index)


def test_unsupported_dtype_on_write(tmp_path):
    with pytest.raises(st.SafetensorsError, match="complex"):
        st.save_file({"c": torch.zeros(2, dtype=torch.complex64)}, tmp_path / "x.safetensors")
