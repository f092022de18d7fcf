#include "dist/parallel_layout.h"

#include <fmt/format.h>

#include <vector>

#include "runtime/error.h"

namespace wanrt::dist {

std::string ParallelLayout::describe() const {
  if (world() == 1) return "1 rank";
  std::string parts;
  if (cfg > 1) parts = fmt::format("{} CFG", cfg);
  if (seq > 1) parts += fmt::format("{}{} sequence", parts.empty() ? "" : " x ", seq);
  return fmt::format("{} ranks: {}", world(), parts);
}

ParallelLayout choose_layout(int ranks, bool guidance, int cfg) {
  if (ranks < 1) {
    throw Error(ErrorCategory::kUsage, fmt::format("--ranks {}: at least 1 rank", ranks));
  }
  if (cfg < 0 || cfg > 2) {
    throw Error(ErrorCategory::kUsage, fmt::format("--cfg-parallel {}: it is 1 or 2", cfg),
                "CFG parallel splits the two guidance passes: 2 ranks at most");
  }
  if (cfg == 2 && !guidance) {
    throw Error(ErrorCategory::kUsage,
                "--cfg-parallel 2 with guidance 1: there is no unconditional pass to split",
                "use --cfg-parallel 1 (sequence parallel only) or a guidance above 1");
  }
  if (cfg == 0) cfg = guidance && ranks % 2 == 0 ? 2 : 1;
  if (ranks % cfg != 0) {
    throw Error(ErrorCategory::kUsage,
                fmt::format("--cfg-parallel {} does not divide --ranks {}", cfg, ranks),
                fmt::format("use an even number of ranks, or --cfg-parallel 1"));
  }
  return ParallelLayout{cfg, ranks / cfg};
}

Parallelism make_parallelism(std::shared_ptr<ProcessGroup> world, const ParallelLayout& layout) {
  if (layout.world() != world->size()) {
    throw Error(ErrorCategory::kUsage,
                fmt::format("the layout ({}) needs {} ranks but the run has {}", layout.describe(),
                            layout.world(), world->size()),
                "start as many ranks as the layout uses (WORLD_SIZE / --ranks)");
  }
  Parallelism p;
  p.layout = layout;
  std::vector<std::vector<int>> cfg_groups(static_cast<std::size_t>(layout.seq));
  std::vector<std::vector<int>> seq_groups(static_cast<std::size_t>(layout.cfg));
  for (int r = 0; r < layout.world(); ++r) {
    cfg_groups[static_cast<std::size_t>(r % layout.seq)].push_back(r);
    seq_groups[static_cast<std::size_t>(r / layout.seq)].push_back(r);
  }
  p.cfg = world->split(cfg_groups, "cfg");
  p.seq = world->split(seq_groups, "seq");
  p.world = std::move(world);
  return p;
}

}  // namespace wanrt::dist
