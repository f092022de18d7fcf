#include "runtime/proc_fields.h"

#include <fstream>
#include <sstream>

namespace wanrt {
namespace internal {

std::int64_t read_proc_kib_field(const std::string& path, const std::string& key) {
  std::ifstream in(path);
  std::string line;
  const std::string prefix = key + ":";
  while (std::getline(in, line)) {
    if (line.compare(0, prefix.size(), prefix) != 0) continue;
    std::istringstream fields(line.substr(prefix.size()));
    std::int64_t kib = -1;
    fields >> kib;
    return kib < 0 ? -1 : kib * 1024;
  }
  return -1;
}

}  // namespace internal
}  // namespace wanrt
