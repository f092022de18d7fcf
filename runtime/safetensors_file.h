// A safetensors file mapped read-only into memory, whose tensors are used in place (layout:
// runtime/safetensors_header.h). The whole file is mapped with
// mmap(PROT_READ, MAP_PRIVATE): its pages come from the page cache, are loaded on first touch,
// and are shared by every process that maps the same file. Tensors over the mapping are
// read-only: writing to one is a bug and faults.
#pragma once

#include <ATen/core/Tensor.h>

#include "runtime/safetensors_header.h"

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <utility>
#include <string>
#include <vector>

namespace wanrt {

/// A safetensors file mapped into memory.
class MappedSafetensors : public std::enable_shared_from_this<MappedSafetensors> {
 public:
  /// Opens, maps and parses `path`. Error(kBundle) naming the file when it cannot be opened or
  /// mapped or its header is invalid (see parse_safetensors_header).
  static std::shared_ptr<MappedSafetensors> open(const std::string& path);
  ~MappedSafetensors();
  MappedSafetensors(const MappedSafetensors&) = delete;
  MappedSafetensors& operator=(const MappedSafetensors&) = delete;

  const std::string& path() const { return path_; }
  std::int64_t file_bytes() const { return static_cast<std::int64_t>(size_); }
  const SafetensorsHeader& header() const { return header_; }
  /// The entry called `name`, or nullptr.
  const SafetensorsEntry* find(const std::string& name) const;

  /// A CPU tensor over the mapping (no copy) that keeps the mapping alive. When the data are
  /// not aligned to the element size the tensor is a private copy instead, and *copied is
  /// set (if given).
  at::Tensor tensor(const SafetensorsEntry& entry, bool* copied = nullptr);

  /// The file offsets [begin, end) of an entry's bytes.
  std::int64_t file_begin(const SafetensorsEntry& e) const { return header_.data_start + e.begin; }
  std::int64_t file_end(const SafetensorsEntry& e) const { return header_.data_start + e.end; }
  /// The file range [begin, end) of `bytes` bytes at `data` when they lie inside the mapping.
  std::optional<std::pair<std::int64_t, std::int64_t>> range_of(const void* data,
                                                                std::size_t bytes) const;
  /// Asks the kernel to read the pages of file range [begin, end) ahead (MADV_WILLNEED).
  void will_need(std::int64_t begin, std::int64_t end) const;
  /// Drops this process's pages of file range [begin, end) (MADV_DONTNEED): they leave its
  /// resident set and are read again (from the page cache or the disk) at the next touch.
  /// Whole pages are dropped, so pages shared with neighbouring ranges go too.
  void dont_need(std::int64_t begin, std::int64_t end) const;
  /// Bytes of file range [begin, end) mapped in this process's page tables (present pages,
  /// from /proc/self/pagemap), in whole pages; -1 when pagemap cannot be read. Reads 8 bytes
  /// per page: meant for tests and reports, not for every step.
  std::int64_t resident_bytes(std::int64_t begin, std::int64_t end) const;

 private:
  MappedSafetensors() = default;
  // The page-aligned part of the mapping covering [begin, end), clamped to the file.
  std::pair<char*, std::size_t> pages(std::int64_t begin, std::int64_t end) const;

  std::string path_;
  char* base_ = nullptr;
  std::size_t size_ = 0;
  SafetensorsHeader header_;
  std::map<std::string, std::size_t> index_;  // name -> entries position
};

}  // namespace wanrt
