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

std::vector<at::Tensor> StageRunner::run_block(torch::jit::Module& block,
                                               std::vector<at::Tensor> state) {
  return to_tensors(block.forward({c10::IValue(std::move(state))}), "block");
}

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
                                                  const std::function<bool()>& cancelled,
                                                  StageRunner* runner) {
  if (cancelled && cancelled()) {
    throw Error(ErrorCategory::kCancelled,
                fmt::format("component '{}' cancelled before its {}", name_, stage_name(info)));
  }
  if (hooks) hooks->before_stage(info);
  const std::string what = fmt::format("component '{}' {}", name_, stage_name(info));
  std::vector<at::Tensor> out;
  try {
    switch (info.kind) {
      case StageKind::kPrologue:
        out = to_tensors(module_.get_method("prologue")({c10::IValue(std::move(state))}), what);
        if (runner) out = runner->after_prologue(std::move(out));
        break;
      case StageKind::kBlock:
        if (runner) {
          out = runner->run_block(blocks_[static_cast<std::size_t>(info.block)], std::move(state));
        } else {
          out = to_tensors(
              blocks_[static_cast<std::size_t>(info.block)].forward({c10::IValue(std::move(state))}),
              what);
        }
        break;
      case StageKind::kEpilogue:
        if (runner) state = runner->before_epilogue(std::move(state));
        out = to_tensors(module_.get_method("epilogue")({c10::IValue(std::move(state))}), what);
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
  if (hooks) hooks->after_stage(info);
  return out;
}

std::vector<at::Tensor> StagedExecutor::run(std::vector<at::Tensor> inputs, StageHooks* hooks,
                                            const std::function<bool()>& cancelled,
                                            StageRunner* runner) {
  const int n = num_blocks();
  std::vector<at::Tensor> state = run_stage({&name_, StageKind::kPrologue, -1, n},
                                            std::move(inputs), hooks, cancelled, runner);
  for (int i = 0; i < n; ++i) {
    state =
        run_stage({&name_, StageKind::kBlock, i, n}, std::move(state), hooks, cancelled, runner);
  }
  return run_stage({&name_, StageKind::kEpilogue, -1, n}, std::move(state), hooks, cancelled,
                   runner);
}

std::vector<at::Tensor> StagedExecutor::forward_monolithic(const std::vector<at::Tensor>& inputs) {
  std::vector<c10::IValue> args(inputs.begin(), inputs.end());
  return to_tensors(module_.forward(std::move(args)), fmt::format("component '{}' forward", name_));
}

}  // namespace wanrt
