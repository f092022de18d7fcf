#include "runtime/parameter_slots.h"

#include <set>

namespace wanrt {

std::vector<ParameterSlot> parameter_slots(const torch::jit::Module& module) {
  std::vector<ParameterSlot> slots;
  std::set<const c10::ivalue::Object*> seen;
  for (const auto& named : module.named_modules()) {
    const auto object = named.value._ivalue();
    if (!seen.insert(object.get()).second) continue;
    const auto type = named.value.type();
    for (std::size_t i = 0; i < type->numAttributes(); ++i) {
      if (!type->is_parameter(i)) continue;
      const c10::IValue value = object->getSlot(i);
      if (!value.isTensor()) continue;  // an optional parameter that is None
      const std::string leaf = type->getAttributeName(i);
      slots.push_back({object, i, named.name.empty() ? leaf : named.name + "." + leaf,
                       value.toTensor()});
    }
  }
  return slots;
}

}  // namespace wanrt
