#include "runtime/component.h"

#include <fmt/format.h>

#include <chrono>
#include <unordered_map>

#include "runtime/error.h"

namespace wanrt {

std::vector<torch::jit::Module> staged_blocks(const torch::jit::Module& module,
                                              const std::string& blocks_attr,
                                              const std::string& what) {
  const std::string hint =
      "the module does not follow the staged contract (prologue / blocks / epilogue); re-export "
      "it with the exporter";
  if (blocks_attr.empty() || !module.hasattr(blocks_attr)) {
    throw Error(ErrorCategory::kBundle,
                fmt::format("{}: no blocks attribute '{}'", what, blocks_attr), hint);
  }
  const c10::IValue value = module.attr(blocks_attr);
  if (!value.isModule()) {
    throw Error(ErrorCategory::kBundle,
                fmt::format("{}: attribute '{}' is not a module list", what, blocks_attr), hint);
  }
  const torch::jit::Module list = value.toModule();
  // A scripted ModuleList keeps its entries as submodules named "0", "1", ...; fetch them by
  // name so the order cannot depend on iteration order.
  std::size_t count = 0;
  for (const auto& child : list.named_children()) {
    (void)child;
    ++count;
  }
  std::vector<torch::jit::Module> blocks;
  blocks.reserve(count);
  for (std::size_t i = 0; i < count; ++i) {
    const std::string key = std::to_string(i);
    if (!list.hasattr(key) || !list.attr(key).isModule()) {
      throw Error(ErrorCategory::kBundle,
                  fmt::format("{}: '{}' has {} submodules but no block '{}'", what, blocks_attr,
                              count, key),
                  hint);
    }
    blocks.push_back(list.attr(key).toModule());
  }
  return blocks;
}

Component Component::load(const BundleManifest& manifest, const std::string& name) {
  const auto start = std::chrono::steady_clock::now();
  Component c;
  c.entry_ = manifest.component(name);
  c.path_ = manifest.path_of(c.entry_);
  const std::string what = fmt::format("component '{}' ({})", name, c.path_);
  try {
    c.module_ = torch::jit::load(c.path_, torch::Device(torch::kCPU));
  } catch (const std::exception& e) {
    throw Error(ErrorCategory::kBundle,
                fmt::format("{}: cannot load TorchScript: {}", what, first_line(e.what())),
                "the file is not a TorchScript archive of this LibTorch version or is damaged; "
                "re-export the bundle");
  }
  c.module_.eval();

  for (const auto& method : c.entry_.contract.methods) {
    if (!c.module_.find_method(method)) {
      throw Error(ErrorCategory::kBundle,
                  fmt::format("{}: the manifest's contract ({}) needs method '{}', which the "
                              "module lacks",
                              what, c.entry_.contract.kind, method),
                  "the file and the manifest do not belong together; re-export the bundle");
    }
  }
  if (c.entry_.staged()) {
    c.blocks_ = staged_blocks(c.module_, c.entry_.contract.blocks_attr, what);
    if (static_cast<int>(c.blocks_.size()) != c.entry_.contract.num_blocks) {
      throw Error(ErrorCategory::kBundle,
                  fmt::format("{}: '{}' holds {} blocks, the manifest says {}", what,
                              c.entry_.contract.blocks_attr, c.blocks_.size(),
                              c.entry_.contract.num_blocks),
                  "the file and the manifest do not belong together; re-export the bundle");
    }
    for (std::size_t i = 0; i < c.blocks_.size(); ++i) {
      if (!c.blocks_[i].find_method("forward")) {
        throw Error(ErrorCategory::kBundle,
                    fmt::format("{}: block {} has no forward method", what, i),
                    "re-export the bundle");
      }
    }
  }
  // After the contract checks: a file that is the wrong module is reported as such, not as
  // weights that do not fit it.
  if (!c.entry_.weights.empty()) {
    std::shared_ptr<MappedSafetensors> file;
    try {
      file = MappedSafetensors::open(manifest.weights_path_of(c.entry_));
    } catch (const Error& e) {
      throw Error(e.category(), fmt::format("{}: {}", what, e.what()), e.hint());
    }
    c.weights_ = bind_weights(c.module_, std::move(file), name, what);
  }
  c.load_seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return c;
}

namespace {

// A new object of the same class with the same slot values, submodules copied the same way
// (`copies` keeps a submodule reached twice one object). Unlike Module::clone, which registers
// a new class with recompiled methods in the compilation unit for every clone (and never
// removes them: about 8 MiB per session of the tiny bundles, found by the soak test), the copy
// shares the class and its compiled methods; only the attribute slots are its own.
c10::intrusive_ptr<c10::ivalue::Object> copy_slots(
    const c10::intrusive_ptr<c10::ivalue::Object>& object,
    std::unordered_map<const c10::ivalue::Object*, c10::intrusive_ptr<c10::ivalue::Object>>& copies) {
  const auto found = copies.find(object.get());
  if (found != copies.end()) return found->second;
  const std::size_t n = object->slots().size();
  auto copy = c10::ivalue::Object::create(
      c10::StrongTypePtr(object->compilation_unit(), object->type()), n);
  copies.emplace(object.get(), copy);
  for (std::size_t i = 0; i < n; ++i) {
    const c10::IValue& value = object->getSlot(i);
    if (value.isObject() && value.toObjectRef().type()->is_module()) {
      copy->setSlot(i, copy_slots(value.toObject(), copies));
    } else {
      copy->setSlot(i, value);
    }
  }
  return copy;
}

}  // namespace

Component Component::share() const {
  Component c;
  c.entry_ = entry_;
  c.path_ = path_;
  c.load_seconds_ = load_seconds_;
  c.weights_ = weights_;
  std::unordered_map<const c10::ivalue::Object*, c10::intrusive_ptr<c10::ivalue::Object>> copies;
  c.module_ = torch::jit::Module(copy_slots(module_._ivalue(), copies));
  c.module_.eval();
  if (entry_.staged()) {
    c.blocks_ = staged_blocks(c.module_, entry_.contract.blocks_attr,
                              fmt::format("component '{}' ({})", entry_.name, path_));
  }
  return c;
}

}  // namespace wanrt
