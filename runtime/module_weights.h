// The weights of a TorchScript module split into units that move to the compute device and
// back independently: one unit per block of a staged module plus the "shell" (everything
// outside the blocks), or a single unit "all". Acquiring a unit installs device copies of its
// tensors in the module's attributes; releasing it reinstalls the host copies and drops the
// device ones (weights are never copied back: inference does not change them).
#pragma once

#include <torch/script.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "runtime/device_transfer.h"
#include "runtime/safetensors_file.h"

namespace wanrt {

/// Per-unit weights of one module.
class ModuleWeights {
 public:
  /// Splits the tensor attributes (parameters, buffers, plain tensor attributes) of `module`:
  /// those reachable from each of `blocks` (modules of `module`, e.g. StagedExecutor's blocks)
  /// form unit "block i", the rest unit "shell"; with no blocks there is one unit "all". Host
  /// copies come from transfer.host_copy() and are installed in the module at once (pinned
  /// on CUDA). `upcast_half_to`: fp16/bf16 tensors are cast to this dtype when acquired
  /// (storage in half precision, compute in fp32); other tensors keep their dtype. A submodule
  /// reachable from several blocks belongs to the first of them; tensors held inside lists or
  /// dicts are not moved. Error(kInternal) when a block is not a submodule of `module`.
  /// `paged`: the memory-mapped weights file the module's tensors were bound to (host
  /// residency "disk"). Tensors over it are kept as they are (no host copy, not pinned), a
  /// unit's pages are read ahead when it is prefetched or acquired, and dropped from the
  /// process's resident set when it is released (MappedSafetensors::dont_need).
  ModuleWeights(torch::jit::Module module, const std::vector<torch::jit::Module>& blocks,
                DeviceTransfer& transfer, std::optional<at::ScalarType> upcast_half_to = {},
                std::shared_ptr<MappedSafetensors> paged = nullptr);

  /// Number of units; the shell (or "all") is unit 0, block i is unit i + 1.
  int num_units() const { return static_cast<int>(units_.size()); }
  /// Unit index of block `i`; Error(kInternal) when out of range or the module has no blocks.
  int block_unit(int i) const;
  /// "shell", "all" or "block i".
  const std::string& unit_name(int unit) const;
  /// Bytes of the unit once on the device (after any upcast), and as held on the host.
  std::int64_t device_bytes(int unit) const;
  std::int64_t host_bytes(int unit) const;
  /// Number of distinct tensors in the unit (tied weights count once).
  int num_tensors(int unit) const;
  /// Bytes of the unit's host tensors that lie in the paged file (0 without one): what the
  /// unit pages in while held and drops at release.
  std::int64_t paged_bytes(int unit) const;
  /// The file ranges [begin, end) of those tensors, merged where adjacent.
  const std::vector<std::pair<std::int64_t, std::int64_t>>& paged_ranges(int unit) const;

  /// Starts bringing the unit to the device (asynchronously on CUDA); no-op when it is resident
  /// or already in flight.
  void prefetch(int unit);
  /// Makes the unit resident: finishes its prefetch or copies it now, installs the device
  /// tensors in the module. No-op when resident.
  void acquire(int unit);
  /// Reinstalls the host tensors and drops the device copies (also cancels a prefetch in
  /// flight by waiting for it and dropping it). No-op when not resident.
  void release(int unit);
  /// Whether the unit's device tensors are installed.
  bool resident(int unit) const;
  /// Whether a prefetch of the unit is in flight.
  bool in_flight(int unit) const;

 private:
  // One attribute slot holding a tensor of the unit. Slots that hold the same tensor (tied
  // weights) share one entry of Unit::hosts, so it is copied and counted once.
  struct Slot {
    c10::intrusive_ptr<c10::ivalue::Object> owner;  ///< the (sub)module object
    std::size_t index = 0;                          ///< attribute slot in its class
    std::size_t tensor = 0;                         ///< index into Unit::hosts
  };
  struct Unit {
    std::string name;
    std::vector<Slot> slots;
    std::vector<at::Tensor> hosts;                      ///< distinct host tensors
    std::vector<std::optional<at::ScalarType>> dtypes;  ///< cast on the way to the device
    std::int64_t device_bytes = 0, host_bytes = 0, paged_bytes = 0;
    std::vector<std::pair<std::int64_t, std::int64_t>> ranges;  ///< in the paged file
    bool resident = false;
    std::optional<PendingCopy> pending;
  };
  const Unit& unit(int index) const;
  Unit& unit(int index);
  void install(Unit& u, const std::vector<at::Tensor>& tensors);

  DeviceTransfer* transfer_;
  std::shared_ptr<MappedSafetensors> paged_;
  std::vector<Unit> units_;
};

}  // namespace wanrt
