#include "optim/ladder.h"

#include <algorithm>

#include "runtime/error.h"

namespace wanrt {

const std::vector<Rung>& ladder() {
  using S = Setting;
  static const std::vector<Rung> rungs = {
      //  id                        name                           decides                         gpu    cpu    at run time
      {RungId::kResident, rung::kResident, {S::kOffload, S::kTextEncoder}, true, false, false},
      {RungId::kTextEncoderOffload, rung::kTextEncoderOffload, {S::kTextEncoder}, true, false, true},
      {RungId::kModelOffload, rung::kModelOffload, {S::kOffload}, true, false, true},
      {RungId::kBlockStreaming, rung::kBlockStreaming,
       {S::kOffload, S::kBlocksResident, S::kPrefetch}, true, false, true},
      {RungId::kCpuResident, rung::kCpuResident, {S::kHostResidency}, false, true, false},
      {RungId::kCpuOnDemand, rung::kCpuOnDemand, {S::kHostResidency}, false, true, false},
      {RungId::kCpuDisk, rung::kCpuDisk, {S::kHostResidency, S::kOffload}, false, true, false},
      {RungId::kCpuHalf, rung::kCpuHalf, {S::kDtype}, false, true, false},
      {RungId::kVaeTiling, rung::kVaeTiling, {S::kVaeTile}, true, true, false},
      {RungId::kFullStreaming, rung::kFullStreaming, {S::kOffload, S::kTextEncoder}, true, false,
       true},
      {RungId::kFrameChunking, rung::kFrameChunking, {S::kFrameChunk}, true, true, false},
  };
  return rungs;
}

std::vector<const Rung*> ladder_walk(bool gpu, bool aggressive) {
  std::vector<const Rung*> out;
  for (const Rung& r : ladder()) {
    if (gpu ? r.gpu : r.cpu) out.push_back(&r);
  }
  if (gpu && aggressive) {
    // Frame chunking (lossless in memory, costs quality at window borders) before full
    // streaming (costs speed).
    auto full = std::find_if(out.begin(), out.end(),
                             [](const Rung* r) { return r->id == RungId::kFullStreaming; });
    auto frames = std::find_if(out.begin(), out.end(),
                               [](const Rung* r) { return r->id == RungId::kFrameChunking; });
    std::iter_swap(full, frames);
  }
  return out;
}

const Rung& rung_of(RungId id) {
  for (const Rung& r : ladder()) {
    if (r.id == id) return r;
  }
  throw Error(ErrorCategory::kInternal, "unknown ladder rung");
}

}  // namespace wanrt
