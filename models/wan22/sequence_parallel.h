// Sequence parallelism (Ulysses) for the Wan DiT: each rank of a sequence group keeps a share
// of the tokens through every block; around self-attention's core an all-to-all trades the
// token split for a head split (every token of a share of the heads), and back. RoPE tables
// and per-token timesteps (TI2V) follow the token split; cross-attention and the FFN run on
// the rank's own tokens. The DiT's blocks must export attn_in/attn_core/attn_out (bundles
// exported by this version's wanrt_export).
#pragma once

#include <memory>

#include "dist/process_group.h"
#include "runtime/staged_executor.h"

namespace wanrt::wan22 {

class SequenceParallelRunner final : public StageRunner {
 public:
  /// Splits over `group` (size > 1); `heads` is the DiT's head count, checked to divide.
  /// Error(kUsage) when it does not, naming the rank counts that would.
  SequenceParallelRunner(dist::ProcessGroup& group, int heads);

  std::vector<at::Tensor> after_prologue(std::vector<at::Tensor> state) override;
  std::vector<at::Tensor> run_block(torch::jit::Module& block,
                                    std::vector<at::Tensor> state) override;
  std::vector<at::Tensor> before_epilogue(std::vector<at::Tensor> state) override;

 private:
  dist::ProcessGroup& group_;
  int64_t tokens_ = 0;      // the whole sequence's length
  bool split_e_ = false;    // per-token timesteps: e (state[2]) was split with the tokens
};

/// The rank counts that split `heads` (for error messages): "1, 2, 3, 4, 6 or 12".
std::string rank_counts_dividing(int heads);

}  // namespace wanrt::wan22
