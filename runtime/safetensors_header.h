// The header of a safetensors file: an 8-byte little-endian length N, then N bytes of JSON
// {name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}}; the
// data section follows, offsets relative to its start. Parsing is separate from mapping so
// that the parser can be fuzzed on its own (test/fuzz/).
#pragma once

#include <c10/core/ScalarType.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace wanrt {

/// One tensor of the header.
struct SafetensorsEntry {
  std::string name;
  std::string dtype;                ///< the file's name ("F32", "BF16", ...)
  c10::ScalarType scalar_type{};    ///< the same as a LibTorch type
  std::vector<std::int64_t> shape;
  std::int64_t begin = 0, end = 0;  ///< byte range in the data section
};

/// A parsed and validated header.
struct SafetensorsHeader {
  std::vector<SafetensorsEntry> entries;  ///< in data order (by begin)
  std::map<std::string, std::string> metadata;
  std::int64_t data_start = 0;  ///< file offset of the data section (8 + N)
};

/// Parses the first `size` bytes of a safetensors file whose total size is `file_bytes`
/// (`size` may be the whole file or at least its 8-byte length and header). Checks: the header
/// length fits the file, the JSON is an object of entries with exactly dtype/shape/
/// data_offsets, known dtypes, non-negative shapes, offsets that match dtype × shape, lie
/// inside the data section and do not overlap. Error(kBundle) naming `what` (the file) and the
/// tensor.
SafetensorsHeader parse_safetensors_header(const char* data, std::size_t size,
                                           std::int64_t file_bytes, const std::string& what);

}  // namespace wanrt
