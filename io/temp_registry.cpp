#include "io/temp_registry.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstddef>
#include <cstring>

namespace wanrt {
namespace {

constexpr int kSlots = 16;
constexpr std::size_t kPathMax = 4096;

// state: 0 free, 1 being written, 2 holds a temporary.
struct Slot {
  std::atomic<int> state{0};
  bool directory = false;
  char path[kPathMax];
};

Slot g_slots[kSlots];

// The files of directory `path`, removed with raw getdents64 (opendir may allocate).
void remove_directory(const char* path) noexcept {
  const int fd = ::open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    alignas(8) char buffer[4096];
    for (;;) {
      const long n = ::syscall(SYS_getdents64, fd, buffer, sizeof buffer);
      if (n <= 0) break;
      for (long offset = 0; offset < n;) {
        const auto* entry = reinterpret_cast<const struct dirent64*>(buffer + offset);
        const char* name = entry->d_name;
        const bool dot = name[0] == '.' && (name[1] == '\0' || (name[1] == '.' && name[2] == '\0'));
        if (!dot) ::unlinkat(fd, name, 0);
        offset += entry->d_reclen;
      }
    }
    ::close(fd);
  }
  ::rmdir(path);
}

}  // namespace

int register_temporary(const char* path, bool directory) noexcept {
  const std::size_t n = std::strlen(path);
  if (n + 1 > kPathMax) return -1;
  for (int i = 0; i < kSlots; ++i) {
    int expected = 0;
    if (g_slots[i].state.compare_exchange_strong(expected, 1)) {
      std::memcpy(g_slots[i].path, path, n + 1);
      g_slots[i].directory = directory;
      g_slots[i].state.store(2);
      return i;
    }
  }
  return -1;
}

void unregister_temporary(int slot) noexcept {
  if (slot >= 0 && slot < kSlots) g_slots[slot].state.store(0);
}

void remove_registered_temporaries() noexcept {
  for (Slot& s : g_slots) {
    if (s.state.load() != 2) continue;
    if (s.directory) {
      remove_directory(s.path);
    } else {
      ::unlink(s.path);
    }
  }
}

}  // namespace wanrt
