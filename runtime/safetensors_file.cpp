#include "runtime/safetensors_file.h"

#include <ATen/ops/empty.h>
#include <ATen/ops/from_blob.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
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
  at::ScalarType type;
  int size;
};
constexpr DtypeInfo kDtypes[] = {
    {"F64", at::kDouble, 8}, {"F32", at::kFloat, 4},  {"F16", at::kHalf, 2},
    {"BF16", at::kBFloat16, 2}, {"I64", at::kLong, 8}, {"I32", at::kInt, 4},
    {"I16", at::kShort, 2},  {"I8", at::kChar, 1},   {"U8", at::kByte, 1},
    {"BOOL", at::kBool, 1},
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

std::shared_ptr<MappedSafetensors> MappedSafetensors::open(const std::string& path) {
  std::shared_ptr<MappedSafetensors> m(new MappedSafetensors());
  m->path_ = path;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    throw Error(ErrorCategory::kBundle,
                fmt::format("{}: cannot open: {}", path, std::strerror(errno)), kHint);
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    throw Error(ErrorCategory::kBundle, fmt::format("{}: cannot stat: {}", path,
                                                    std::strerror(err)));
  }
  m->size_ = static_cast<std::size_t>(st.st_size);
  if (m->size_ >= 8) {
    void* p = ::mmap(nullptr, m->size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      const int err = errno;
      ::close(fd);
      throw Error(ErrorCategory::kBundle,
                  fmt::format("{}: cannot map {} bytes into memory: {}", path, m->size_,
                              std::strerror(err)),
                  "the address space or the map count is exhausted (ulimit -v, "
                  "vm.max_map_count), or the file system does not support mmap");
    }
    m->base_ = static_cast<char*>(p);
  }
  ::close(fd);  // the mapping keeps the file
  m->header_ = parse_safetensors_header(m->base_, m->size_, static_cast<std::int64_t>(m->size_),
                                        path);
  for (std::size_t i = 0; i < m->header_.entries.size(); ++i) {
    m->index_[m->header_.entries[i].name] = i;
  }
  return m;
}

MappedSafetensors::~MappedSafetensors() {
  if (base_) ::munmap(base_, size_);
}

const SafetensorsEntry* MappedSafetensors::find(const std::string& name) const {
  const auto it = index_.find(name);
  return it == index_.end() ? nullptr : &header_.entries[it->second];
}

at::Tensor MappedSafetensors::tensor(const SafetensorsEntry& e, bool* copied) {
  const auto options = at::TensorOptions().dtype(e.scalar_type).device(at::kCPU);
  if (copied) *copied = false;
  if (e.end == e.begin) return at::empty(e.shape, options);
  char* data = base_ + header_.data_start + e.begin;
  const auto element = static_cast<std::uintptr_t>(c10::elementSize(e.scalar_type));
  if (reinterpret_cast<std::uintptr_t>(data) % element != 0) {
    if (copied) *copied = true;
    at::Tensor t = at::empty(e.shape, options);
    std::memcpy(t.data_ptr(), data, static_cast<std::size_t>(e.end - e.begin));
    return t;
  }
  // The deleter holds the mapping: it is unmapped when the last tensor over it goes.
  std::shared_ptr<MappedSafetensors> self = shared_from_this();
  return at::from_blob(
      data, e.shape, [self](void*) mutable { self.reset(); }, options);
}

std::pair<char*, std::size_t> MappedSafetensors::pages(std::int64_t begin,
                                                       std::int64_t end) const {
  const auto page = static_cast<std::int64_t>(::sysconf(_SC_PAGESIZE));
  begin = std::max<std::int64_t>(0, begin);
  end = std::min<std::int64_t>(static_cast<std::int64_t>(size_), end);
  if (!base_ || end <= begin) return {nullptr, 0};
  const std::int64_t first = begin / page * page;
  const std::int64_t last = (end + page - 1) / page * page;
  return {base_ + first, static_cast<std::size_t>(
                             std::min<std::int64_t>(last, static_cast<std::int64_t>(size_)) -
                             first)};
}

std::optional<std::pair<std::int64_t, std::int64_t>> MappedSafetensors::range_of(
    const void* data, std::size_t bytes) const {
  const auto* p = static_cast<const char*>(data);
  if (!base_ || p < base_ || p + bytes > base_ + size_) return std::nullopt;
  const auto begin = static_cast<std::int64_t>(p - base_);
  return std::make_pair(begin, begin + static_cast<std::int64_t>(bytes));
}

void MappedSafetensors::will_need(std::int64_t begin, std::int64_t end) const {
  const auto [p, n] = pages(begin, end);
  if (n) ::madvise(p, n, MADV_WILLNEED);  // advice only: a failure changes nothing we rely on
}

void MappedSafetensors::dont_need(std::int64_t begin, std::int64_t end) const {
  const auto [p, n] = pages(begin, end);
  if (n) ::madvise(p, n, MADV_DONTNEED);
}

std::int64_t MappedSafetensors::resident_bytes(std::int64_t begin, std::int64_t end) const {
  const auto [p, n] = pages(begin, end);
  if (!n) return 0;
  const auto page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  const int fd = ::open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  // One 64-bit entry per virtual page; bit 63: present in RAM.
  std::vector<std::uint64_t> entries((n + page - 1) / page);
  const auto offset =
      static_cast<off_t>(reinterpret_cast<std::uintptr_t>(p) / page * sizeof(std::uint64_t));
  const std::size_t want = entries.size() * sizeof(std::uint64_t);
  std::size_t got = 0;
  while (got < want) {
    const ssize_t r = ::pread(fd, reinterpret_cast<char*>(entries.data()) + got, want - got,
                              offset + static_cast<off_t>(got));
    if (r <= 0) break;
    got += static_cast<std::size_t>(r);
  }
  ::close(fd);
  if (got < want) return -1;
  std::int64_t count = 0;
  for (std::uint64_t e : entries) count += static_cast<std::int64_t>(e >> 63);
  return count * static_cast<std::int64_t>(page);
}

}  // namespace wanrt
