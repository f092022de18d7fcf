#include "models/wan22/sequence_parallel.h"

#include <fmt/format.h>

#include "runtime/error.h"

namespace wanrt::wan22 {
namespace {

// The block state's layout (wanrt_export/dit.py, WanModel.prologue):
// [x [B, L, dim], e0 [B, Lt, 6, dim], e [B, Lt, dim], context, rope_cos [L, 1, d/2],
//  rope_sin [L, 1, d/2], grid]; Lt is 1 (one timestep) or L (per-token timesteps).
constexpr std::size_t kTokens = 0, kE0 = 1, kE = 2, kCos = 4, kSin = 5;

std::vector<at::Tensor> tensors(const c10::IValue& value) {
  return value.toTensorVector();
}

}  // namespace

std::string rank_counts_dividing(int heads) {
  std::vector<int> divisors;
  for (int n = 1; n <= heads; ++n) {
    if (heads % n == 0) divisors.push_back(n);
  }
  std::string text;
  for (std::size_t i = 0; i < divisors.size(); ++i) {
    if (i > 0) text += i + 1 == divisors.size() ? " or " : ", ";
    text += std::to_string(divisors[i]);
  }
  return text;
}

SequenceParallelRunner::SequenceParallelRunner(dist::ProcessGroup& group, int heads)
    : group_(group) {
  if (heads % group.size() != 0) {
    throw Error(ErrorCategory::kUsage,
                fmt::format("sequence parallel over {} ranks: the DiT's {} attention heads do not "
                            "split evenly",
                            group.size(), heads),
                fmt::format("use a sequence split of {} ranks (with CFG parallel, twice that in "
                            "all)",
                            rank_counts_dividing(heads)));
  }
}

std::vector<at::Tensor> SequenceParallelRunner::after_prologue(std::vector<at::Tensor> state) {
  const int64_t n = group_.size();
  const int64_t r = group_.rank();
  tokens_ = state[kTokens].size(1);
  if (tokens_ % n != 0) {
    throw Error(ErrorCategory::kUsage,
                fmt::format("sequence parallel over {} ranks: {} tokens do not split evenly",
                            n, tokens_),
                "choose a size and frame count whose token count (latent frames x height/16 x "
                "width/16 for TI2V-5B) divides by the sequence ranks, or use fewer ranks");
  }
  const int64_t part = tokens_ / n;
  const int64_t begin = r * part;
  auto mine = [&](const at::Tensor& t, int64_t dim) {
    return t.slice(dim, begin, begin + part).contiguous();
  };
  state[kTokens] = mine(state[kTokens], 1);
  split_e_ = state[kE].size(1) == tokens_ && tokens_ > 1;
  if (split_e_) {
    state[kE0] = mine(state[kE0], 1);
    state[kE] = mine(state[kE], 1);
  }
  state[kCos] = mine(state[kCos], 0);
  state[kSin] = mine(state[kSin], 0);
  return state;
}

std::vector<at::Tensor> SequenceParallelRunner::run_block(torch::jit::Module& block,
                                                          std::vector<at::Tensor> state) {
  if (!block.find_method("attn_in")) {
    throw Error(ErrorCategory::kBundle,
                "sequence parallel: the DiT's blocks lack attn_in/attn_core/attn_out (exported "
                "by an older wanrt_export)",
                "re-export the bundle with this version, or run CFG parallel only "
                "(--cfg-parallel 2 on 2 ranks) or on one rank");
  }
  const std::vector<at::Tensor> qkv = tensors(block.get_method("attn_in")({c10::IValue(state)}));
  // [B, L/n, heads, d] -> [B, L, heads/n, d]: every token of this rank's heads.
  std::vector<c10::IValue> gathered;
  for (const at::Tensor& t : qkv) gathered.emplace_back(group_.all_to_all(t, 2, 1));
  const int64_t b = qkv[0].size(0), heads = qkv[0].size(2), d = qkv[0].size(3);
  const int64_t mine = heads / group_.size();
  const at::Tensor core = block.get_method("attn_core")(std::move(gathered)).toTensor();
  // [B, L, heads/n * d] -> [B, L/n, heads * d]: this rank's tokens, every head in order.
  const at::Tensor back = group_.all_to_all(core.view({b, tokens_, mine, d}), 1, 2);
  return tensors(block.get_method("attn_out")(
      {c10::IValue(std::move(state)), back.reshape({b, back.size(1), heads * d})}));
}

std::vector<at::Tensor> SequenceParallelRunner::before_epilogue(std::vector<at::Tensor> state) {
  // The head works per token: every rank gets all tokens back and runs it whole, so each holds
  // the full velocity (the scheduler step stays identical on every rank).
  state[kTokens] = at::cat(group_.all_gather(state[kTokens]), 1);
  if (split_e_) state[kE] = at::cat(group_.all_gather(state[kE]), 1);
  return state;
}

}  // namespace wanrt::wan22
