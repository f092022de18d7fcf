#include "runtime/module_weights.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <set>
#include <utility>

#include "runtime/error.h"

namespace wanrt {
namespace {

using Object = c10::ivalue::Object;

bool is_half(at::ScalarType type) { return type == at::kHalf || type == at::kBFloat16; }

std::int64_t bytes_of(const at::Tensor& t, at::ScalarType type) {
  return t.numel() * static_cast<std::int64_t>(c10::elementSize(type));
}

}  // namespace

ModuleWeights::ModuleWeights(torch::jit::Module module,
                             const std::vector<torch::jit::Module>& blocks,
                             DeviceTransfer& transfer, std::optional<at::ScalarType> upcast_half_to,
                             std::shared_ptr<MappedSafetensors> paged)
    : transfer_(&transfer), paged_(std::move(paged)) {
  // Every module object is claimed by the first unit that reaches it: the blocks first (each
  // with its submodules), then the shell takes what is left of the whole tree.
  std::set<const Object*> claimed;
  std::set<const Object*> in_module;
  for (const auto& m : module.modules()) in_module.insert(m._ivalue().get());

  auto take = [&](Unit& u, const torch::jit::Module& root) {
    std::map<const c10::TensorImpl*, std::size_t> seen;  // tied tensors: one entry
    for (const auto& m : root.modules()) {
      const c10::intrusive_ptr<Object>& obj = m._ivalue();
      if (!claimed.insert(obj.get()).second) continue;
      const auto& type = m.type();
      for (std::size_t i = 0; i < type->numAttributes(); ++i) {
        const c10::IValue& value = obj->getSlot(i);
        if (!value.isTensor()) continue;
        const at::Tensor tensor = value.toTensor();
        if (!tensor.defined()) continue;
        auto [it, inserted] = seen.emplace(tensor.unsafeGetTensorImpl(), u.hosts.size());
        if (inserted) {
          const at::ScalarType host_type = tensor.scalar_type();
          std::optional<at::ScalarType> dtype;
          if (upcast_half_to && is_half(host_type) && *upcast_half_to != host_type) {
            dtype = upcast_half_to;
          }
          const auto range =
              paged_ && tensor.is_contiguous()
                  ? paged_->range_of(tensor.data_ptr(), static_cast<std::size_t>(tensor.nbytes()))
                  : std::nullopt;
          if (range) {
            // Paged from the file: kept over the mapping, never copied to (pinned) host RAM.
            u.hosts.push_back(tensor);
            u.paged_bytes += range->second - range->first;
            u.ranges.push_back(*range);
          } else {
            u.hosts.push_back(transfer_->host_copy(tensor));
          }
          u.dtypes.push_back(dtype);
          u.host_bytes += bytes_of(tensor, host_type);
          u.device_bytes += bytes_of(tensor, dtype.value_or(host_type));
        }
        u.slots.push_back({obj, i, it->second});
      }
    }
  };

  units_.resize(blocks.size() + 1);
  units_[0].name = blocks.empty() ? "all" : "shell";
  for (std::size_t b = 0; b < blocks.size(); ++b) {
    if (in_module.count(blocks[b]._ivalue().get()) == 0) {
      throw Error(ErrorCategory::kInternal,
                  fmt::format("module weights: block {} is not a submodule of the module", b));
    }
    Unit& u = units_[b + 1];
    u.name = fmt::format("block {}", b);
    take(u, blocks[b]);
  }
  take(units_[0], module);
  for (Unit& u : units_) {
    std::sort(u.ranges.begin(), u.ranges.end());
    std::vector<std::pair<std::int64_t, std::int64_t>> merged;
    for (const auto& r : u.ranges) {
      if (!merged.empty() && r.first <= merged.back().second) {
        merged.back().second = std::max(merged.back().second, r.second);
      } else {
        merged.push_back(r);
      }
    }
    u.ranges = std::move(merged);
  }
  // Install the host copies (pinned on CUDA) so the module holds nothing else.
  for (Unit& u : units_) install(u, u.hosts);
}

const ModuleWeights::Unit& ModuleWeights::unit(int index) const {
  if (index < 0 || index >= num_units()) {
    throw Error(ErrorCategory::kInternal,
                fmt::format("module weights: unit {} requested, there are {}", index, num_units()));
  }
  return units_[static_cast<std::size_t>(index)];
}

ModuleWeights::Unit& ModuleWeights::unit(int index) {
  const auto& self = *this;
  return const_cast<Unit&>(self.unit(index));
}

void ModuleWeights::install(Unit& u, const std::vector<at::Tensor>& tensors) {
  if (tensors.size() != u.hosts.size()) {
    throw Error(ErrorCategory::kInternal,
                fmt::format("module weights: {} tensors for unit '{}' of {}", tensors.size(),
                            u.name, u.hosts.size()));
  }
  for (const Slot& s : u.slots) s.owner->setSlot(s.index, c10::IValue(tensors[s.tensor]));
}

int ModuleWeights::block_unit(int i) const {
  if (i < 0 || i + 1 >= num_units()) {
    throw Error(
        ErrorCategory::kInternal,
        fmt::format("module weights: block {} requested, there are {}", i, num_units() - 1));
  }
  return i + 1;
}

const std::string& ModuleWeights::unit_name(int index) const { return unit(index).name; }
std::int64_t ModuleWeights::device_bytes(int index) const { return unit(index).device_bytes; }
std::int64_t ModuleWeights::host_bytes(int index) const { return unit(index).host_bytes; }
int ModuleWeights::num_tensors(int index) const {
  return static_cast<int>(unit(index).hosts.size());
}
std::int64_t ModuleWeights::paged_bytes(int index) const { return unit(index).paged_bytes; }
const std::vector<std::pair<std::int64_t, std::int64_t>>& ModuleWeights::paged_ranges(
    int index) const {
  return unit(index).ranges;
}
bool ModuleWeights::resident(int index) const { return unit(index).resident; }
bool ModuleWeights::in_flight(int index) const { return unit(index).pending.has_value(); }

void ModuleWeights::prefetch(int index) {
  Unit& u = unit(index);
  if (u.resident || u.pending) return;
  for (const auto& [begin, end] : u.ranges) paged_->will_need(begin, end);
  u.pending = transfer_->start(u.hosts, u.dtypes, /*async=*/true);
}

void ModuleWeights::acquire(int index) {
  Unit& u = unit(index);
  if (u.resident) return;
  PendingCopy copy;
  if (u.pending) {
    copy = std::move(*u.pending);
    u.pending.reset();
  } else {
    for (const auto& [begin, end] : u.ranges) paged_->will_need(begin, end);
    copy = transfer_->start(u.hosts, u.dtypes, /*async=*/false);
  }
  install(u, transfer_->finish(copy));
  u.resident = true;
}

void ModuleWeights::release(int index) {
  Unit& u = unit(index);
  if (u.pending) {
    // The copy may still be running: let the compute stream wait for it before its memory
    // can be reused, then drop it.
    transfer_->finish(*u.pending);
    u.pending.reset();
  }
  if (!u.resident) return;
  install(u, u.hosts);
  u.resident = false;
  // The pages stay in the page cache (and on disk); they leave this process's resident set
  // and are read again at the unit's next use. Safe while a CUDA copy from them is queued:
  // the pages fault back in.
  for (const auto& [begin, end] : u.ranges) paged_->dont_need(begin, end);
}

}  // namespace wanrt
