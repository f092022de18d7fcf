#include "runtime/threads.h"

#include <ATen/Parallel.h>

#include <atomic>

#include "runtime/system_resources.h"

namespace wanrt {

int configure_threads(int requested) {
  const int count = requested > 0 ? requested : cpu_core_count();
  if (at::get_num_threads() != count) at::set_num_threads(count);
  static std::atomic<bool> interop_tried{false};
  if (!interop_tried.exchange(true)) {
    try {
      at::set_num_interop_threads(count);
    } catch (const std::exception&) {
      // The inter-op pool already started (or was sized) elsewhere; its size stays.
    }
  }
  return at::get_num_threads();
}

}  // namespace wanrt
