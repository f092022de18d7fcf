"""Reading and writing the safetensors format with numpy and torch only.

Layout: an 8-byte little-endian header length N, N bytes of JSON
`{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}}`
(padded with spaces), then the raw little-endian tensor bytes; offsets are relative to
the end of the header. Sharded checkpoints add `<prefix>.safetensors.index.json` with a
`weight_map` from tensor name to shard file.

Reads go through mmap and copy one tensor at a time, so a checkpoint larger than RAM can
be streamed into a module. numpy has no bfloat16: BF16 data is read as int16 and viewed
as torch.bfloat16. Every error names the file and, where there is one, the tensor.
"""
import json
import mmap
import os
import struct
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

import numpy as np
import torch

PathLike = Union[str, os.PathLike]

# safetensors dtype -> (torch dtype, numpy dtype used to read the bytes)
DTYPES: Dict[str, Tuple[torch.dtype, np.dtype]] = {
    "F64": (torch.float64, np.dtype("<f8")),
    "F32": (torch.float32, np.dtype("<f4")),
    "F16": (torch.float16, np.dtype("<f2")),
    "BF16": (torch.bfloat16, np.dtype("<i2")),
    "I64": (torch.int64, np.dtype("<i8")),
    "I32": (torch.int32, np.dtype("<i4")),
    "I16": (torch.int16, np.dtype("<i2")),
    "I8": (torch.int8, np.dtype("i1")),
    "U8": (torch.uint8, np.dtype("u1")),
    "BOOL": (torch.bool, np.dtype("?")),
}
_TORCH_TO_ST = {t: name for name, (t, _) in DTYPES.items()}
# A header larger than this is certainly corrupt (the real 14B shards have ~100 KiB headers).
MAX_HEADER_BYTES = 100 * 1024 * 1024


class SafetensorsError(ValueError):
    """A malformed or inconsistent safetensors file or index."""


def dtype_name(dtype: torch.dtype) -> str:
    """The safetensors name of a torch dtype (F32, BF16, ...)."""
    try:
        return _TORCH_TO_ST[dtype]
    except KeyError:
        raise SafetensorsError(f"dtype {dtype} cannot be stored in safetensors") from None


class TensorInfo:
    """Header entry of one tensor: dtype name, shape and byte range in the data section."""

    __slots__ = ("name", "dtype", "shape", "begin", "end")

    def __init__(self, name: str, dtype: str, shape: Tuple[int, ...], begin: int, end: int):
        self.name, self.dtype, self.shape, self.begin, self.end = name, dtype, shape, begin, end

    @property
    def torch_dtype(self) -> torch.dtype:
        return DTYPES[self.dtype][0]

    def __repr__(self) -> str:
        return f"TensorInfo({self.name!r}, {self.dtype}, {list(self.shape)}, [{self.begin}, {self.end}])"


def _parse_header(path: Path, header: bytes, data_len: int) -> Tuple[Dict[str, TensorInfo], Dict[str, str]]:
    try:
        obj = json.loads(header.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SafetensorsError(f"{path}: header is not valid JSON ({e})") from None
    if not isinstance(obj, dict):
        raise SafetensorsError(f"{path}: header is not a JSON object")
    meta = obj.pop("__metadata__", None) or {}
    if not isinstance(meta, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()):
        raise SafetensorsError(f"{path}: __metadata__ must map strings to strings")
    infos: Dict[str, TensorInfo] = {}
    for name, entry in obj.items():
        where = f"{path}: tensor '{name}'"
        if not isinstance(entry, dict) or set(entry) - {"dtype", "shape", "data_offsets"} or len(entry) != 3:
            raise SafetensorsError(f"{where}: entry must have exactly dtype, shape and data_offsets")
        dt, shape, offs = entry["dtype"], entry["shape"], entry["data_offsets"]
        if dt not in DTYPES:
            raise SafetensorsError(f"{where}: unsupported dtype {dt!r} (known: {', '.join(DTYPES)})")
        if not isinstance(shape, list) or not all(isinstance(s, int) and s >= 0 for s in shape):
            raise SafetensorsError(f"{where}: bad shape {shape!r}")
        if (not isinstance(offs, list) or len(offs) != 2 or not all(isinstance(o, int) for o in offs)
                or not 0 <= offs[0] <= offs[1]):
            raise SafetensorsError(f"{where}: bad data_offsets {offs!r}")
        nbytes = int(np.prod(shape, dtype=np.int64)) * DTYPES[dt][1].itemsize
        if offs[1] - offs[0] != nbytes:
            raise SafetensorsError(f"{where}: data_offsets span {offs[1] - offs[0]} bytes but "
                                   f"{dt}{shape} needs {nbytes}")
        if offs[1] > data_len:
            raise SafetensorsError(f"{where}: data ends at byte {offs[1]} but the file has only "
                                   f"{data_len} data bytes (truncated file?)")
        infos[name] = TensorInfo(name, dt, tuple(shape), offs[0], offs[1])
    spans = sorted((i.begin, i.end, i.name) for i in infos.values() if i.end > i.begin)
    for (b0, e0, n0), (b1, e1, n1) in zip(spans, spans[1:]):
        if b1 < e0:
            raise SafetensorsError(f"{path}: tensors '{n0}' and '{n1}' overlap in the data section")
    return infos, meta


class SafetensorsFile:
    """One safetensors file opened lazily: header parsed at once, tensors read on demand.

    Use as a context manager or call close(); get() returns a tensor that owns its memory.
    """

    def __init__(self, path: PathLike):
        self.path = Path(path)
        try:
            self._file = open(self.path, "rb")
        except OSError as e:
            raise SafetensorsError(f"{self.path}: cannot open ({e.strerror})") from None
        try:
            size = os.fstat(self._file.fileno()).st_size
            if size < 8:
                raise SafetensorsError(f"{self.path}: file is {size} bytes, too short for a safetensors header")
            (hlen,) = struct.unpack("<Q", self._file.read(8))
            if hlen > MAX_HEADER_BYTES or 8 + hlen > size:
                raise SafetensorsError(f"{self.path}: header length {hlen} does not fit in a file of "
                                       f"{size} bytes (corrupt or truncated)")
            header = self._file.read(hlen)
            self._data_start = 8 + hlen
            self.infos, self.metadata = _parse_header(self.path, header, size - self._data_start)
            self._mm = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ) if size > 0 else None
        except BaseException:
            self._file.close()
            raise

    def keys(self) -> List[str]:
        return list(self.infos)

    def __contains__(self, name: str) -> bool:
        return name in self.infos

    def info(self, name: str) -> TensorInfo:
        try:
            return self.infos[name]
        except KeyError:
            raise SafetensorsError(f"{self.path}: no tensor named '{name}'") from None

    def get(self, name: str) -> torch.Tensor:
        """A copy of tensor `name` as a CPU torch tensor of its stored dtype."""
        i = self.info(name)
        tdt, ndt = DTYPES[i.dtype]
        count = (i.end - i.begin) // ndt.itemsize
        if count == 0:
            return torch.empty(i.shape, dtype=tdt)
        arr = np.frombuffer(self._mm, dtype=ndt, count=count, offset=self._data_start + i.begin)
        t = torch.from_numpy(arr.copy()).reshape(i.shape)
        return t.view(torch.bfloat16) if tdt == torch.bfloat16 else t

    def close(self) -> None:
        if getattr(self, "_mm", None) is not None:
            self._mm.close()
            self._mm = None
        self._file.close()

    def __enter__(self) -> "SafetensorsFile":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def load_file(path: PathLike) -> Dict[str, torch.Tensor]:
    """All tensors of one safetensors file, in header order."""
    with SafetensorsFile(path) as f:
        return {k: f.get(k) for k in f.keys()}


def read_metadata(path: PathLike) -> Dict[str, str]:
    with SafetensorsFile(path) as f:
        return dict(f.metadata)


def _tensor_bytes(t: torch.Tensor) -> memoryview:
    t = t.detach().to("cpu").contiguous()
    if t.dtype == torch.bfloat16:
        t = t.view(torch.int16)
    return memoryview(t.numpy()).cast("B")


def save_file(tensors: Dict[str, torch.Tensor], path: PathLike, metadata: Optional[Dict[str, str]] = None,
              alignment: int = 8) -> None:
    """Write `tensors` (in dict order) as one safetensors file whose data section starts at a
    multiple of `alignment` bytes (the header is padded with spaces, as the format allows)."""
    path = Path(path)
    header: Dict[str, object] = {}
    if metadata:
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
            raise SafetensorsError(f"{path}: metadata must map strings to strings")
        header["__metadata__"] = dict(metadata)
    offset = 0
    for name, t in tensors.items():
        if not isinstance(t, torch.Tensor):
            raise SafetensorsError(f"{path}: '{name}' is not a tensor")
        if t.is_sparse:
            raise SafetensorsError(f"{path}: tensor '{name}' is sparse")
        nbytes = t.numel() * t.element_size()
        header[name] = {"dtype": dtype_name(t.dtype), "shape": list(t.shape), "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
    raw += b" " * (-(8 + len(raw)) % alignment)  # the data section starts aligned
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for t in tensors.values():
            if t.numel():
                f.write(_tensor_bytes(t))


class TensorWriter:
    """A safetensors file written tensor by tensor, in any order: the header (names, dtypes,
    shapes, offsets in `specs` order) is written first; write(name, tensor) puts each tensor's
    bytes at its offset. close() checks that every tensor was written."""

    def __init__(self, path: PathLike, specs, metadata: Optional[Dict[str, str]] = None,
                 alignment: int = 8):
        self.path = Path(path)
        header: Dict[str, object] = {}
        if metadata:
            header["__metadata__"] = dict(metadata)
        self._spans: Dict[str, Tuple[int, int, torch.dtype, Tuple[int, ...]]] = {}
        offset = 0
        for name, dtype, shape in specs:
            nbytes = int(np.prod(shape, dtype=np.int64)) * torch.empty(0, dtype=dtype).element_size()
            header[name] = {"dtype": dtype_name(dtype), "shape": list(shape), "data_offsets": [offset, offset + nbytes]}
            self._spans[name] = (offset, nbytes, dtype, tuple(shape))
            offset += nbytes
        raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
        raw += b" " * (-(8 + len(raw)) % alignment)
        self._data_start = 8 + len(raw)
        self._file = open(self.path, "wb")
        self._file.write(struct.pack("<Q", len(raw)))
        self._file.write(raw)
        self._file.truncate(self._data_start + offset)
        self._written: set = set()

    def write(self, name: str, tensor: torch.Tensor) -> None:
        offset, nbytes, dtype, shape = self._spans[name]
        if tensor.dtype != dtype or tuple(tensor.shape) != shape:
            raise SafetensorsError(f"{self.path}: tensor '{name}' is {tensor.dtype}{list(tensor.shape)}, "
                                   f"the header says {dtype}{list(shape)}")
        self._file.seek(self._data_start + offset)
        if nbytes:
            self._file.write(_tensor_bytes(tensor))
        self._written.add(name)

    def close(self) -> None:
        self._file.close()
        missing = [n for n in self._spans if n not in self._written]
        if missing:
            raise SafetensorsError(f"{self.path}: tensors never written: {missing[:5]}")

    def __enter__(self) -> "TensorWriter":
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is None:
            self.close()
        else:
            self._file.close()


# ---------------------------------------------------------------------------------------------
# Sharded checkpoints


class ShardedSafetensors:
    """A set of shards described by `*.safetensors.index.json`, with the SafetensorsFile API.

    Every shard named by the index must exist, every mapped tensor must be in its shard, and
    a shard may not hold a tensor the index maps elsewhere or omits.
    """

    def __init__(self, index_path: PathLike):
        self.path = Path(index_path)
        try:
            obj = json.loads(self.path.read_text(encoding="utf-8"))
        except OSError as e:
            raise SafetensorsError(f"{self.path}: cannot read index ({e.strerror})") from None
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise SafetensorsError(f"{self.path}: index is not valid JSON ({e})") from None
        wm = obj.get("weight_map") if isinstance(obj, dict) else None
        if not isinstance(wm, dict) or not all(isinstance(v, str) for v in wm.values()):
            raise SafetensorsError(f"{self.path}: index has no weight_map of tensor name -> shard file")
        self.metadata = obj.get("metadata") or {}
        self.weight_map: Dict[str, str] = dict(wm)
        self.shards: Dict[str, SafetensorsFile] = {}
        try:
            for shard in sorted(set(wm.values())):
                if Path(shard).name != shard:
                    raise SafetensorsError(f"{self.path}: shard name '{shard}' must be a plain file name")
                p = self.path.parent / shard
                if not p.is_file():
                    raise SafetensorsError(f"{self.path}: shard '{shard}' is missing")
                self.shards[shard] = SafetensorsFile(p)
            for name, shard in wm.items():
                if name not in self.shards[shard]:
                    raise SafetensorsError(f"{self.path}: tensor '{name}' is mapped to '{shard}' but that "
                                           "shard does not contain it")
            for shard, f in self.shards.items():
                for name in f.keys():
                    if self.weight_map.get(name) != shard:
                        raise SafetensorsError(f"{f.path}: tensor '{name}' is not mapped to this shard "
                                               "by the index")
        except BaseException:
            self.close()
            raise

    def keys(self) -> List[str]:
        return list(self.weight_map)

    def __contains__(self, name: str) -> bool:
        return name in self.weight_map

    def info(self, name: str) -> TensorInfo:
        if name not in self.weight_map:
            raise SafetensorsError(f"{self.path}: no tensor named '{name}'")
        return self.shards[self.weight_map[name]].info(name)

    def get(self, name: str) -> torch.Tensor:
        if name not in self.weight_map:
            raise SafetensorsError(f"{self.path}: no tensor named '{name}'")
        return self.shards[self.weight_map[name]].get(name)

    def file_of(self, name: str) -> Path:
        return self.shards[self.weight_map[name]].path

    def close(self) -> None:
        for f in self.shards.values():
            f.close()
        self.shards = {}

    def __enter__(self) -> "ShardedSafetensors":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def load_sharded(index_path: PathLike) -> Dict[str, torch.Tensor]:
    """All tensors of a sharded checkpoint, in weight_map order."""
    with ShardedSafetensors(index_path) as s:
        return {k: s.get(k) for k in s.keys()}


def shard_names(prefix: str, n: int) -> List[str]:
    """HF shard file names: `<prefix>-00001-of-00003.safetensors`, ..."""
    return [f"{prefix}-{i + 1:05d}-of-{n:05d}.safetensors" for i in range(n)]


def save_sharded(tensors: Dict[str, torch.Tensor], out_dir: PathLike, num_shards: int,
                 prefix: str = "diffusion_pytorch_model") -> Path:
    """Split `tensors` (in order) into `num_shards` shards of consecutive tensors plus the index.

    Returns the index path `<out_dir>/<prefix>.safetensors.index.json`.
    """
    out_dir = Path(out_dir)
    names = list(tensors)
    if not 1 <= num_shards <= max(1, len(names)):
        raise ValueError(f"num_shards must be in 1..{len(names)}, got {num_shards}")
    total = sum(t.numel() * t.element_size() for t in tensors.values())
    files = shard_names(prefix, num_shards)
    per, extra = divmod(len(names), num_shards)
    groups, start = [], 0
    for g in range(num_shards):
        end = start + per + (1 if g < extra else 0)
        groups.append(names[start:end])
        start = end
    weight_map = {}
    for fname, group in zip(files, groups):
        save_file({n: tensors[n] for n in group}, out_dir / fname, metadata={"format": "pt"})
        weight_map.update({n: fname for n in group})
    index = out_dir / f"{prefix}.safetensors.index.json"
    index.write_text(json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2))
    return index

