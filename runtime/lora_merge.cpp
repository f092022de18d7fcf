#include "runtime/lora_merge.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <numeric>

#include "runtime/error.h"
#include "runtime/lora_text.h"
#include "runtime/parameter_slots.h"

namespace wanrt {
namespace {

constexpr const char* kOtherModelHint =
    "the LoRA was made for a model of another size or family (for example a 14B LoRA on the "
    "5B model); use one made for this model";

std::int64_t product(std::vector<std::int64_t>::const_iterator begin,
                     std::vector<std::int64_t>::const_iterator end) {
  return std::accumulate(begin, end, std::int64_t{1}, std::multiplies<>());
}

// Whether low-rank factors up [out, r, 1...] @ down [r, in...] give a delta of `shape`.
bool low_rank_fits(const LoraDelta& d, const std::vector<std::int64_t>& shape) {
  const auto& up = d.up->shape;
  const auto& down = d.down->shape;
  if (shape.size() < 2 || up[0] != shape[0]) return false;
  if (product(up.begin() + 2, up.end()) != 1) return false;
  if (down.size() == shape.size()) {
    return std::equal(down.begin() + 1, down.end(), shape.begin() + 1);
  }
  return down.size() == 2 && down[1] == product(shape.begin() + 1, shape.end());
}

}  // namespace

LoraMergePlan plan_lora_merge(const std::map<std::string, std::vector<std::int64_t>>& parameters,
                              const std::vector<LoraApplication>& loras,
                              const LoraMergeOptions& options, const std::string& what) {
  LoraMergePlan plan;
  plan.matched_modules.assign(loras.size(), 0);
  plan.unmatched_keys.resize(loras.size());
  std::map<std::string, std::size_t> item_of;
  auto add = [&](const std::string& name, const std::vector<std::int64_t>& shape,
                 LoraMergeItem::Term term) {
    auto [it, inserted] = item_of.emplace(name, plan.items.size());
    if (inserted) {
      plan.items.emplace_back();
      plan.items.back().parameter = name;
      plan.items.back().shape = shape;
    }
    plan.items[it->second].terms.push_back(term);
  };
  auto find = [&](const std::string& name) -> const std::vector<std::int64_t>* {
    const auto it = parameters.find(name);
    return it == parameters.end() ? nullptr : &it->second;
  };

  for (std::size_t li = 0; li < loras.size(); ++li) {
    const LoraFile& lora = *loras[li].lora;
    const std::string where = fmt::format("LoRA file {}", lora.path);
    // A full delta (diff, diff_b) must have its parameter's shape.
    auto check_full = [&](const SafetensorsEntry& delta, const std::string& name,
                          const std::vector<std::int64_t>& shape) {
      if (delta.shape == shape) return;
      throw Error(ErrorCategory::kBundle,
                  fmt::format("{}: '{}' {} does not fit parameter {} {} of {}", where, delta.name,
                              lora_text::shape(delta.shape), name, lora_text::shape(shape), what),
                  kOtherModelHint);
    };
    for (const LoraDelta& d : lora.deltas) {
      const std::string target = options.map_name ? options.map_name(d.module) : d.module;
      bool matched = false;
      std::vector<std::string> weight_keys, bias_keys;
      for (const std::string& key : d.keys) {
        (d.diff_b && key == d.diff_b->name ? bias_keys : weight_keys).push_back(key);
      }
      auto missed = [&](std::vector<std::string>& keys) {
        for (auto& key : keys) plan.unmatched_keys[li].push_back(std::move(key));
      };
      if (d.down || d.diff) {
        std::string name = target.empty() ? "" : target + ".weight";
        const std::vector<std::int64_t>* shape = target.empty() ? nullptr : find(name);
        if (!shape && d.diff && !d.down && !target.empty() && find(target)) {
          name = target;  // a bare parameter, such as a block's modulation
          shape = find(target);
        }
        if (shape) {
          if (d.down && !low_rank_fits(d, *shape)) {
            throw Error(ErrorCategory::kBundle,
                        fmt::format("{}: '{}' {} @ '{}' {} does not fit parameter {} {} of {}",
                                    where, d.up->name, lora_text::shape(d.up->shape), d.down->name,
                                    lora_text::shape(d.down->shape), name, lora_text::shape(*shape), what),
                        kOtherModelHint);
          }
          if (d.diff) check_full(*d.diff, name, *shape);
          add(name, *shape, {li, &d, false});
          matched = true;
        } else {
          missed(weight_keys);
        }
      }
      if (d.diff_b) {
        const std::string name = target.empty() ? "" : target + ".bias";
        const std::vector<std::int64_t>* shape = target.empty() ? nullptr : find(name);
        if (shape) {
          check_full(*d.diff_b, name, *shape);
          add(name, *shape, {li, &d, true});
          matched = true;
        } else {
          missed(bias_keys);
        }
      }
      if (matched) ++plan.matched_modules[li];
    }
    if (plan.matched_modules[li] == 0) {
      std::vector<std::string> modules;
      for (const LoraDelta& d : lora.deltas) modules.push_back(d.module);
      throw Error(ErrorCategory::kBundle,
                  fmt::format("{} matches no parameter of {} (its modules: {})", where, what,
                              lora_text::some(modules, 6)),
                  "the LoRA is for another model or another component; `wanrun inspect --lora "
                  "FILE` shows what it targets");
    }
    if (!plan.unmatched_keys[li].empty() && !options.allow_partial) {
      throw Error(ErrorCategory::kBundle,
                  fmt::format("{}: {} key(s) match no parameter of {}: {}", where,
                              plan.unmatched_keys[li].size(), what,
                              lora_text::some(plan.unmatched_keys[li], 6)),
                  "no key is dropped silently; pass --lora-allow-partial (lora_allow_partial "
                  "in the APIs) to apply the keys that match");
    }
  }
  for (const LoraMergeItem& item : plan.items) {
    const std::int64_t n = product(item.shape.begin(), item.shape.end());
    plan.merged_elements += n;
    plan.largest_elements = std::max(plan.largest_elements, n);
  }
  return plan;
}

LoraMergeReport merge_loras(torch::jit::Module& module, const std::vector<LoraApplication>& loras,
                            const LoraMergeOptions& options, const std::string& what,
                            const MappedSafetensors* mapped) {
  const auto start = std::chrono::steady_clock::now();
  const c10::NoGradGuard no_grad;
  const std::vector<ParameterSlot> slots = parameter_slots(module);
  std::map<std::string, std::vector<std::int64_t>> shapes;
  std::map<std::string, const ParameterSlot*> by_name;
  for (const ParameterSlot& s : slots) {
    shapes.emplace(s.name, s.tensor.sizes().vec());
    by_name.emplace(s.name, &s);
  }
  LoraMergeReport report;
  report.plan = plan_lora_merge(shapes, loras, options, what);

  for (const LoraMergeItem& item : report.plan.items) {
    const bool changes = std::any_of(item.terms.begin(), item.terms.end(), [&](const auto& t) {
      return loras[t.lora].strength != 0.0;
    });
    if (!changes) continue;  // strength 0: the weights stay exactly as they were
    const at::Tensor old = by_name.at(item.parameter)->tensor;
    at::Tensor acc = old.to(at::kFloat, /*non_blocking=*/false, /*copy=*/true).contiguous();
    for (const LoraMergeItem::Term& term : item.terms) {
      const double s = loras[term.lora].strength;
      if (s == 0.0) continue;
      const LoraFile& lora = *loras[term.lora].lora;
      const LoraDelta& d = *term.delta;
      if (term.bias) {
        acc.add_(lora.tensor(*d.diff_b).view(acc.sizes()), s);
        continue;
      }
      if (d.down) {
        // One GEMM that accumulates into the float32 copy (beta 1): no product temporary and
        // one pass over the weight less than mm + add (bench/README.md, "LoRAs").
        const at::Tensor up = lora.tensor(*d.up).flatten(1);
        const at::Tensor down = lora.tensor(*d.down).flatten(1);
        at::Tensor flat = acc.view({acc.size(0), -1});
        flat.addmm_(up, down, /*beta=*/1.0, /*alpha=*/s * d.scale());
      }
      if (d.diff) acc.add_(lora.tensor(*d.diff).view(acc.sizes()), s);
    }
    const at::Tensor merged = old.scalar_type() == at::kFloat ? acc : acc.to(old.scalar_type());
    for (const ParameterSlot& s : slots) {
      if (s.tensor.unsafeGetTensorImpl() == old.unsafeGetTensorImpl()) {
        s.owner->setSlot(s.index, merged);
      }
    }
    if (mapped && old.is_contiguous()) {
      const auto range = mapped->range_of(old.data_ptr(), static_cast<std::size_t>(old.nbytes()));
      if (range) mapped->dont_need(range->first, range->second);
    }
    ++report.tensors;
    report.merged_bytes += static_cast<std::int64_t>(merged.nbytes());
  }
  for (const LoraApplication& a : loras) a.lora->file->dont_need(0, a.lora->file->file_bytes());
  report.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return report;
}

}  // namespace wanrt
