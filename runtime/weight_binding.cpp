#include "runtime/weight_binding.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <map>
#include <set>
#include <unordered_map>
#include <vector>

#include "runtime/error.h"
#include "runtime/parameter_slots.h"

namespace wanrt {
namespace {

constexpr const char* kHint =
    "the TorchScript file and the weights file do not belong together; re-export the bundle "
    "(python3 -m wanrt_export export ...)";

std::string describe(at::ScalarType type, c10::IntArrayRef shape) {
  return fmt::format("{}[{}]", c10::toString(type), fmt::join(shape, ", "));
}

}  // namespace

BoundWeights bind_weights(torch::jit::Module& module, std::shared_ptr<MappedSafetensors> file,
                          const std::string& component, const std::string& what) {
  const std::string where = fmt::format("{}: weights file {}", what, file->path());
  const auto& meta = file->header().metadata;
  const auto owner = meta.find("wanrt_component");
  if (owner != meta.end() && owner->second != component) {
    throw Error(ErrorCategory::kBundle,
                fmt::format("{} holds the weights of component '{}', not '{}'", where,
                            owner->second, component),
                "the weights files were swapped or copied from another bundle; re-export it");
  }

  // Check everything first, so a bad file leaves the module as it was.
  const std::vector<ParameterSlot> slots = parameter_slots(module);
  std::unordered_map<const c10::TensorImpl*, const SafetensorsEntry*> by_placeholder;
  std::vector<const SafetensorsEntry*> entries(slots.size(), nullptr);
  std::set<std::string> used;
  for (std::size_t i = 0; i < slots.size(); ++i) {
    const ParameterSlot& s = slots[i];
    const SafetensorsEntry* e = file->find(s.name);
    if (!e) {
      // A tied parameter appears in the file under the name it was first reached by.
      const auto tied = by_placeholder.find(s.tensor.unsafeGetTensorImpl());
      if (tied == by_placeholder.end()) {
        throw Error(ErrorCategory::kBundle,
                    fmt::format("{} has no tensor '{}' (a parameter of the module)", where,
                                s.name),
                    kHint);
      }
      e = tied->second;
    }
    if (e->scalar_type != s.tensor.scalar_type() ||
        c10::IntArrayRef(e->shape) != s.tensor.sizes()) {
      throw Error(ErrorCategory::kBundle,
                  fmt::format("{}: tensor '{}' is {}, but the module's parameter is {}", where,
                              s.name, describe(e->scalar_type, e->shape),
                              describe(s.tensor.scalar_type(), s.tensor.sizes())),
                  kHint);
    }
    entries[i] = e;
    used.insert(e->name);
    by_placeholder.emplace(s.tensor.unsafeGetTensorImpl(), e);
  }
  std::vector<std::string> unknown;
  for (const auto& e : file->header().entries) {
    if (!used.count(e.name)) unknown.push_back(e.name);
  }
  if (!unknown.empty()) {
    const std::size_t shown = std::min<std::size_t>(unknown.size(), 5);
    throw Error(ErrorCategory::kBundle,
                fmt::format("{} holds {} tensor(s) that are no parameter of the module: {}{}",
                            where, unknown.size(),
                            fmt::join(unknown.begin(), unknown.begin() + shown, ", "),
                            shown < unknown.size() ? ", ..." : ""),
                kHint);
  }

  BoundWeights bound;
  bound.file = file;
  std::map<const SafetensorsEntry*, at::Tensor> tensors;
  for (std::size_t i = 0; i < slots.size(); ++i) {
    auto it = tensors.find(entries[i]);
    if (it == tensors.end()) {
      bool copied = false;
      at::Tensor t = file->tensor(*entries[i], &copied);
      const std::int64_t bytes = entries[i]->end - entries[i]->begin;
      (copied ? bound.copied_bytes : bound.mapped_bytes) += bytes;
      ++bound.tensors;
      it = tensors.emplace(entries[i], std::move(t)).first;
    }
    slots[i].owner->setSlot(slots[i].index, it->second);
  }
  return bound;
}

}  // namespace wanrt
