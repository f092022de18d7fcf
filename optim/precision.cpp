#include "optim/precision.h"

#include <c10/core/GradMode.h>

#include <functional>
#include <unordered_map>
#include <utility>

#include "runtime/keep_fp32.h"

namespace wanrt {

namespace {

// One floating tensor attribute: the module object that owns it, its attribute name there and
// its dotted name from the root.
struct TensorSlot {
  torch::jit::Module owner;
  std::string attr;
  std::string name;
};

// The tensors of a module, each listed once with every slot that refers to it (a tied weight
// or a submodule reachable under two names is one tensor with several slots).
struct TensorGroup {
  std::vector<TensorSlot> slots;
  bool keep = false;
};

std::string join(const std::string& prefix, const std::string& attr) {
  return prefix.empty() ? attr : prefix + "." + attr;
}

}  // namespace

at::ScalarType to_scalar_type(Dtype dtype) noexcept {
  switch (dtype) {
    case Dtype::kFp32:
      return at::kFloat;
    case Dtype::kBf16:
      return at::kBFloat16;
    case Dtype::kFp16:
      return at::kHalf;
  }
  return at::kFloat;
}

bool cpu_vae_bf16_supported() {
  static const bool supported = [] {
    try {
      const c10::NoGradGuard no_grad;
      const at::Tensor x = at::zeros({1, 1, 2, 2}, at::TensorOptions().dtype(at::kBFloat16));
      const std::vector<int64_t> size{4, 4};
      at::_upsample_nearest_exact2d(x, at::IntArrayRef(size));
      return true;
    } catch (const std::exception&) {
      return false;
    }
  }();
  return supported;
}

CastReport cast_module(torch::jit::Module& module, Dtype dtype,
                       const std::vector<std::string>& keep_fp32,
                       const std::function<void(const at::Tensor&)>& replaced) {
  // Works inside or outside an InferenceScope; the conversions never need autograd.
  const c10::NoGradGuard no_grad;

  // Pass 1: every floating tensor attribute (parameter, buffer or plain attribute) by the
  // TensorImpl it holds. Grouping happens before any replacement, so the keys stay valid.
  std::vector<TensorGroup> groups;
  std::unordered_map<const void*, std::size_t> group_of;
  for (const auto& named : module.named_modules()) {
    const auto type = named.value.type();
    const auto object = named.value._ivalue();
    for (std::size_t i = 0; i < type->numAttributes(); ++i) {
      const c10::IValue& value = object->getSlot(i);
      if (!value.isTensor()) continue;  // submodules, lists, scalars, None
      const at::Tensor& tensor = value.toTensor();
      if (!tensor.defined() || !tensor.is_floating_point()) continue;
      const std::string& attr = type->getAttributeName(i);
      const void* key = tensor.unsafeGetTensorImpl();
      auto [it, inserted] = group_of.emplace(key, groups.size());
      if (inserted) groups.emplace_back();
      groups[it->second].slots.push_back({named.value, attr, join(named.name, attr)});
    }
  }

  // Pass 2: a tensor stays fp32 when any of its names matches a pattern; convert one tensor
  // at a time, so the peak is the module plus one converted tensor (the old one is freed
  // once its last slot is replaced).
  const at::ScalarType target = to_scalar_type(dtype);
  CastReport report;
  for (auto& group : groups) {
    for (const auto& slot : group.slots) {
      if (keep_fp32_match_any(keep_fp32, slot.name)) group.keep = true;
    }
    at::Tensor converted;
    {
      const at::Tensor old = group.slots.front().owner.attr(group.slots.front().attr).toTensor();
      converted = old.to(group.keep ? at::kFloat : target);
      report.bytes_before += old.numel() * static_cast<std::int64_t>(old.element_size());
      if (replaced && !converted.is_same(old)) replaced(old);
    }
    const std::int64_t elements = converted.numel();
    report.bytes_after += elements * static_cast<std::int64_t>(converted.element_size());
    if (group.keep) {
      ++report.kept_fp32_tensors;
      report.kept_elements += elements;
    } else {
      ++report.cast_tensors;
      report.cast_elements += elements;
    }
    // setattr keeps the slot's parameter/buffer flag: it lives in the class type.
    for (auto& slot : group.slots) slot.owner.setattr(slot.attr, converted);
  }
  return report;
}

CastReport cast_module_from(torch::jit::Module& module, Dtype dtype,
                            const std::vector<std::string>& keep_fp32,
                            const MappedSafetensors* file) {
  if (!file) return cast_module(module, dtype, keep_fp32);
  std::vector<std::pair<std::int64_t, std::int64_t>> read;
  const CastReport report = cast_module(module, dtype, keep_fp32, [&](const at::Tensor& old) {
    if (const auto range = file->range_of(old.data_ptr(), old.nbytes())) {
      file->dont_need(range->first, range->second);
      read.push_back(*range);
    }
  });
  for (const auto& [begin, end] : read) file->dont_need(begin, end);
  return report;
}

std::optional<at::ScalarType> upcast_on_acquire(const ComponentPlan& plan) noexcept {
  if (is_half(plan.storage) && plan.compute == Dtype::kFp32) return at::kFloat;
  return std::nullopt;
}

}  // namespace wanrt
