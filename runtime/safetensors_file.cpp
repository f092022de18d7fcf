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

#include "runtime/error.h"

namespace wanrt {
namespace {

constexpr const char* kOpenHint =
    "check that the bundle is complete and readable by this user; re-export it if a file is "
    "missing";

}  // namespace

std::shared_ptr<MappedSafetensors> MappedSafetensors::open(const std::string& path) {
  std::shared_ptr<MappedSafetensors> m(new MappedSafetensors());
  m->path_ = path;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    throw Error(ErrorCategory::kBundle,
                fmt::format("{}: cannot open: {}", path, std::strerror(errno)), kOpenHint);
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
