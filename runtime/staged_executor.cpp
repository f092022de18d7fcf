#include "runtime/staged_executor.h"

#include <fmt/format.h>

#include <utility>

#include "runtime/component.h"
#include "runtime/error.h"

namespace wanrt {
namespace {

std::vector<at::Tensor> to_tensors(const c10::IValue& value, const std::string& what) {
  if (value.isTensor()) return {value.toTensor()};
  if (value.isTensorList()) return value.toTensorVector();
  std::vector<at::Tensor> out;
  if (value.isTuple()) {
    for (const auto& item : value.toTupleRef().elements()) out.push_back(item.toTensor());
    return out;
  }
  if (value.isList()) {
    for (const auto& item : value.toListRef()) out.push_back(item.toTensor());
    return out;
  }
  throw Error(ErrorCategory::kBundle,
              fmt::format("{} returned a {}, expected tensors", what, value.tagKind()),
              "the module does not follow the staged contract; re-export it");
}

}  // namespace

std::string stage_name(const StageInfo& info) {
  switch (info.kind) {
    case StageKind::kPrologue:
      return "prologue";
    case StageKind::kBlock:
      return fmt::format("block {}", info.block);
    case StageKind::kEpilogue:
      return "epilogue";
  }
  return "?";
}

StagedExecutor::StagedExecutor(torch::jit::Module module, std::string name,
                               const std::string& blocks_attr)
    : module_(std::move(module)), name_(std::move(name)) {
  const std::string what = fmt::format("component '{}'", name_);
  for (const char* method : {"prologue", "epilogue"}) {
    if (!module_.find_method(method)) {
      throw Error(ErrorCategory::kBundle,
                  fmt::format("{}: no method '{}'; it is not a staged module", what, method),
                  "only components with contract kind 'staged' run stage by stage");
    }
  }
  blocks_ = staged_blocks(module_, blocks_attr, what);
}

StagedExecutor::StagedExecutor(const Component& component)
    : StagedExecutor(component.module(), component.entry().name,
                     component.entry().contract.blocks_attr) {}

torch::jit::Module& StagedExecutor::block(int i) {
  if (i < 0 || i >= num_blocks()) {
    throw Error(
        ErrorCategory::kInternal,
        fmt::format("component '{}': block {} requested, it has {}", name_, i, num_blocks()));
  }
  return blocks_[static_cast<std::size_t>(i)];
}

std::vector<at::Tensor> StagedExecutor::run_stage(const StageInfo& info,
                                                  std::vector<at::Tensor> state, StageHooks* hooks,
                                                  const std::function<bool()>& cancelled) {
  if (cancelled && cancelled()) {
    throw Error(ErrorCategory::kCancelled,
                fmt::format("component '{}' cancelled before its {}", name_, stage_name(info)));
  }
  if (hooks) hooks->before_stage(info);
  const std::string what = fmt::format("component '{}' {}", name_, stage_name(info));
  std::vector<c10::IValue> args{c10::IValue(std::move(state))};
  c10::IValue result;
  try {
    switch (info.kind) {
      case StageKind::kPrologue:
        result = module_.get_method("prologue")(std::move(args));
        break;
      case StageKind::kBlock:
        result = blocks_[static_cast<std::size_t>(info.block)].forward(std::move(args));
        break;
      case StageKind::kEpilogue:
        result = module_.get_method("epilogue")(std::move(args));
        break;
    }
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    const std::string message = first_line(e.what());
    if (is_out_of_memory(e)) {
      throw Error(ErrorCategory::kOutOfMemory, fmt::format("{}: {}", what, message),
                  "lower the memory use (offload, lower precision, smaller size or fewer frames)");
    }
    throw Error(ErrorCategory::kInternal, fmt::format("{} failed: {}", what, message),
                "the stage's inputs do not match the module; please report this");
  }
  std::vector<at::Tensor> out = to_tensors(result, what);
  if (hooks) hooks->after_stage(info);
  return out;
}

std::vector<at::Tensor> StagedExecutor::run(std::vector<at::Tensor> inputs, StageHooks* hooks,
                                            const std::function<bool()>& cancelled) {
  const int n = num_blocks();
  std::vector<at::Tensor> state =
      run_stage({&name_, StageKind::kPrologue, -1, n}, std::move(inputs), hooks, cancelled);
  for (int i = 0; i < n; ++i) {
    state = run_stage({&name_, StageKind::kBlock, i, n}, std::move(state), hooks, cancelled);
  }
  return run_stage({&name_, StageKind::kEpilogue, -1, n}, std::move(state), hooks, cancelled);
}

std::vector<at::Tensor> StagedExecutor::forward_monolithic(const std::vector<at::Tensor>& inputs) {
  std::vector<c10::IValue> args(inputs.begin(), inputs.end());
  return to_tensors(module_.forward(std::move(args)), fmt::format("component '{}' forward", name_));
}

}  // namespace wanrt
