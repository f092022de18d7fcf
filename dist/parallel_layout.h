// How the ranks of a run share a request: CFG parallel (the conditional and unconditional DiT
// passes on different ranks) times sequence parallel (the DiT's tokens split across ranks,
// Ulysses attention). Rank r is CFG index r / seq and sequence index r % seq.
#pragma once

#include <memory>
#include <string>

#include "dist/process_group.h"

namespace wanrt::dist {

/// The split of `world()` ranks: cfg (1 or 2) times seq.
struct ParallelLayout {
  int cfg = 1;
  int seq = 1;
  /// Number of ranks.
  int world() const { return cfg * seq; }
  /// "1 rank", "2 ranks: 2 CFG", "4 ranks: 2 CFG x 2 sequence" ...
  std::string describe() const;
};

/// The layout for `ranks` ranks. `cfg` 0 picks: 2 when `guidance` (an unconditional pass
/// exists) and `ranks` is even, else 1; the rest is sequence parallel. Error(kUsage) when `cfg`
/// is not 0, 1 or 2, or does not divide `ranks`, or is 2 without guidance.
ParallelLayout choose_layout(int ranks, bool guidance, int cfg = 0);

/// The groups a rank works in: the whole run, its CFG pair and its sequence group.
struct Parallelism {
  ParallelLayout layout;
  std::shared_ptr<ProcessGroup> world;
  std::shared_ptr<ProcessGroup> cfg;  ///< ranks with this rank's sequence index (size layout.cfg)
  std::shared_ptr<ProcessGroup> seq;  ///< ranks with this rank's CFG index (size layout.seq)
  /// True on the rank that writes outputs and reports (world rank 0).
  bool leader() const { return !world || world->rank() == 0; }
};

/// Splits `world` as `layout` says (every rank calls it). Error(kUsage) when the layout's size
/// differs from the group's.
Parallelism make_parallelism(std::shared_ptr<ProcessGroup> world, const ParallelLayout& layout);

}  // namespace wanrt::dist
