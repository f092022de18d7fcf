// The machine every rank of a run plans for. Each rank probes its own machine; when the figures
// differ (free RAM moves while ranks start, machines differ), ranks planning alone could pick
// different plans and compute different numerics. Planning against the same, tightest figures
// gives every rank the same plan, one that fits each of them.
#pragma once

#include "dist/process_group.h"
#include "runtime/system_resources.h"

namespace wanrt::dist {

/// The smallest of each figure across the ranks of `group` (every rank calls it): cores, host
/// RAM (total and available), the CPU's bf16 features, and the GPU this rank computes on (the
/// one `local_rank` names, listed as GPU 0: memory, compute capability; no GPU when any rank has
/// none). The CPU model and GPU name stay this rank's. A group of one returns `mine` unchanged.
SystemResources agree_on_resources(ProcessGroup& group, const SystemResources& mine,
                                   int local_rank);

}  // namespace wanrt::dist
