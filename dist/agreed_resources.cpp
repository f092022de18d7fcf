#include "dist/agreed_resources.h"

#include <cstdint>
#include <vector>

namespace wanrt::dist {

SystemResources agree_on_resources(ProcessGroup& group, const SystemResources& mine,
                                   int local_rank) {
  if (group.size() == 1) return mine;
  const GpuInfo* gpu = nullptr;
  for (const GpuInfo& g : mine.gpus) {
    if (g.index == local_rank) gpu = &g;
  }
  const GpuInfo none;
  const GpuInfo& g = gpu ? *gpu : none;
  // One vector, one collective; a GPU's capability as major * 100 + minor keeps its order.
  const std::vector<std::int64_t> agreed = group.all_min({
      mine.cpu_cores,
      mine.cpu_avx512_bf16 ? 1 : 0,
      mine.cpu_amx ? 1 : 0,
      mine.ram_total,
      mine.ram_available,
      gpu ? 1 : 0,
      g.cc_major * 100 + g.cc_minor,
      g.total_bytes,
      g.free_bytes,
      g.bf16 ? 1 : 0,
      g.fp16 ? 1 : 0,
  });
  SystemResources out = mine;
  out.cpu_cores = static_cast<int>(agreed[0]);
  out.cpu_avx512_bf16 = agreed[1] != 0;
  out.cpu_amx = agreed[2] != 0;
  out.ram_total = agreed[3];
  out.ram_available = agreed[4];
  out.gpus.clear();
  if (agreed[5] != 0) {
    GpuInfo shared = g;
    shared.index = 0;
    shared.cc_major = static_cast<int>(agreed[6] / 100);
    shared.cc_minor = static_cast<int>(agreed[6] % 100);
    shared.total_bytes = agreed[7];
    shared.free_bytes = agreed[8];
    shared.bf16 = agreed[9] != 0;
    shared.fp16 = agreed[10] != 0;
    out.gpus.push_back(shared);
  }
  return out;
}

}  // namespace wanrt::dist
