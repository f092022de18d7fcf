#include "runtime/safetensors_header.h"

#include <fmt/format.h>

#include <algorithm>
#include <limits>
#include <nlohmann/json.hpp>

#include "runtime/error.h"

namespace wanrt {
namespace {

// A header larger than this is corrupt (real 14B shards have ~100 KiB headers).
constexpr std::int64_t kMaxHeaderBytes = 100LL << 20;
constexpr const char* kHint =
    "the weights file is damaged, truncated or not the one the manifest names; re-export the "
    "bundle (python3 -m wanrt_export export ...)";

struct DtypeInfo {
  const char* name;
  c10::ScalarType type;
  int size;
};
constexpr DtypeInfo kDtypes[] = {
    {"F64", c10::kDouble, 8}, {"F32", c10::kFloat, 4},  {"F16", c10::kHalf, 2},
    {"BF16", c10::kBFloat16, 2}, {"I64", c10::kLong, 8}, {"I32", c10::kInt, 4},
    {"I16", c10::kShort, 2},  {"I8", c10::kChar, 1},   {"U8", c10::kByte, 1},
    {"BOOL", c10::kBool, 1},
};

const DtypeInfo* dtype_info(const std::string& name) {
  for (const auto& d : kDtypes) {
    if (name == d.name) return &d;
  }
  return nullptr;
}

[[noreturn]] void fail(const std::string& what, const std::string& message) {
  throw Error(ErrorCategory::kBundle, fmt::format("{}: {}", what, message), kHint);
}

std::string known_dtypes() {
  std::string s;
  for (const auto& d : kDtypes) s += (s.empty() ? "" : ", ") + std::string(d.name);
  return s;
}

}  // namespace

SafetensorsHeader parse_safetensors_header(const char* data, std::size_t size,
                                           std::int64_t file_bytes, const std::string& what) {
  if (file_bytes < 8 || size < 8) {
    fail(what, fmt::format("{} bytes is too short for a safetensors header", file_bytes));
  }
  std::uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(data[i]);
  if (n > static_cast<std::uint64_t>(kMaxHeaderBytes) ||
      static_cast<std::int64_t>(n) > file_bytes - 8) {
    fail(what, fmt::format("header length {} does not fit in a file of {} bytes (corrupt or "
                           "truncated)",
                           n, file_bytes));
  }
  if (8 + n > size) fail(what, "the header is cut short");
  SafetensorsHeader h;
  h.data_start = static_cast<std::int64_t>(8 + n);
  const std::int64_t data_bytes = file_bytes - h.data_start;

  nlohmann::json doc;
  try {
    doc = nlohmann::json::parse(data + 8, data + 8 + n);
  } catch (const nlohmann::json::exception& e) {
    fail(what, fmt::format("the header is not valid JSON ({})", e.what()));
  }
  if (!doc.is_object()) fail(what, "the header is not a JSON object");
  for (auto it = doc.begin(); it != doc.end(); ++it) {
    const std::string& name = it.key();
    const nlohmann::json& v = it.value();
    if (name == "__metadata__") {
      if (v.is_null()) continue;
      if (!v.is_object()) fail(what, "__metadata__ must map strings to strings");
      for (auto m = v.begin(); m != v.end(); ++m) {
        if (!m.value().is_string()) fail(what, "__metadata__ must map strings to strings");
        h.metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    const std::string where = fmt::format("tensor '{}'", name);
    if (!v.is_object() || v.size() != 3 || !v.contains("dtype") || !v.contains("shape") ||
        !v.contains("data_offsets")) {
      fail(what, where + ": the entry must have exactly dtype, shape and data_offsets");
    }
    SafetensorsEntry e;
    e.name = name;
    const nlohmann::json& dt = v["dtype"];
    const DtypeInfo* info = dt.is_string() ? dtype_info(dt.get<std::string>()) : nullptr;
    if (!info) {
      fail(what, fmt::format("{}: unsupported dtype {} (known: {})", where, dt.dump(),
                             known_dtypes()));
    }
    e.dtype = info->name;
    e.scalar_type = info->type;
    const nlohmann::json& shape = v["shape"];
    if (!shape.is_array()) fail(what, where + ": the shape is not a list");
    // Overflow-checked element count: a shape whose byte size exceeds the file is rejected
    // below, so anything past the file size can stop counting.
    std::int64_t bytes = info->size;
    bool huge = false;
    for (const auto& d : shape) {
      if (!d.is_number_integer() || d.get<std::int64_t>() < 0) {
        fail(what, fmt::format("{}: bad shape {}", where, shape.dump()));
      }
      const std::int64_t dim = d.get<std::int64_t>();
      e.shape.push_back(dim);
      if (dim != 0 && bytes > std::numeric_limits<std::int64_t>::max() / dim) huge = true;
      bytes = huge ? bytes : bytes * dim;
    }
    const nlohmann::json& offs = v["data_offsets"];
    if (!offs.is_array() || offs.size() != 2 || !offs[0].is_number_integer() ||
        !offs[1].is_number_integer() || offs[0].get<std::int64_t>() < 0 ||
        offs[1].get<std::int64_t>() < offs[0].get<std::int64_t>()) {
      fail(what, fmt::format("{}: bad data_offsets {}", where, offs.dump()));
    }
    e.begin = offs[0].get<std::int64_t>();
    e.end = offs[1].get<std::int64_t>();
    if (huge || e.end - e.begin != bytes) {
      fail(what, fmt::format("{}: data_offsets span {} bytes but {}{} needs {}", where,
                             e.end - e.begin, e.dtype, shape.dump(),
                             huge ? std::string("more than the file") : std::to_string(bytes)));
    }
    if (e.end > data_bytes) {
      fail(what, fmt::format("{}: data ends at byte {} but the file has only {} data bytes "
                             "(truncated file?)",
                             where, e.end, data_bytes));
    }
    h.entries.push_back(std::move(e));
  }
  std::sort(h.entries.begin(), h.entries.end(),
            [](const SafetensorsEntry& a, const SafetensorsEntry& b) {
              return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
            });
  const SafetensorsEntry* prev = nullptr;
  for (const auto& e : h.entries) {
    if (e.end == e.begin) continue;
    if (prev && e.begin < prev->end) {
      fail(what, fmt::format("tensors '{}' and '{}' overlap in the data section", prev->name,
                             e.name));
    }
    prev = &e;
  }
  return h;
}

}  // namespace wanrt
