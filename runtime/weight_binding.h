// Format 2 bundles: binding a component's parameters to the tensors of its safetensors file.
// The TorchScript module holds a placeholder per parameter (its shape and dtype over one
// element); binding replaces each placeholder by the file's tensor, used in place.
#pragma once

#include <torch/script.h>

#include <cstdint>
#include <memory>
#include <string>

#include "runtime/safetensors_file.h"

namespace wanrt {

/// What bind_weights installed.
struct BoundWeights {
  std::shared_ptr<MappedSafetensors> file;
  int tensors = 0;                ///< parameters bound (tied parameters count once)
  std::int64_t mapped_bytes = 0;  ///< bytes used in place, over the mapping
  std::int64_t copied_bytes = 0;  ///< bytes copied (data not aligned to the element size)
};

/// Installs the tensors of `file` in the parameter slots of `module` and its submodules, by
/// qualified name ("blocks.0.self_attn.q.weight"). Slots holding the same placeholder (tied
/// parameters) get the same tensor. Error(kBundle) naming `what` (the component), the file
/// and the tensor, before anything is installed, when: the file's __metadata__ names another
/// component (wanrt_component), a parameter has no tensor in the file, a tensor's dtype or
/// shape differs from the module's parameter, or the file holds a tensor that is no
/// parameter of the module.
BoundWeights bind_weights(torch::jit::Module& module, std::shared_ptr<MappedSafetensors> file,
                          const std::string& component, const std::string& what);

}  // namespace wanrt
