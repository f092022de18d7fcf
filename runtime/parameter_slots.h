// The parameter slots of a TorchScript module and its submodules, by qualified name: where
// weight binding and LoRA merging install their tensors.
#pragma once

#include <torch/script.h>

#include <string>
#include <vector>

namespace wanrt {

/// One parameter attribute of a (sub)module object.
struct ParameterSlot {
  c10::intrusive_ptr<c10::ivalue::Object> owner;  ///< the (sub)module object
  std::size_t index = 0;                          ///< attribute slot in its class
  std::string name;                               ///< "blocks.0.self_attn.q.weight"
  at::Tensor tensor;                              ///< what the slot holds now
};

/// Every parameter slot holding a tensor, each submodule object visited once (a module
/// reachable by two paths is listed under the first). Tied parameters appear once per slot.
std::vector<ParameterSlot> parameter_slots(const torch::jit::Module& module);

}  // namespace wanrt
