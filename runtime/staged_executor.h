// Generic driver of the staged contract: prologue -> blocks[0..n-1] -> epilogue over a
// List[Tensor] state. It knows nothing of the model; hooks let higher layers (offload
// policies, progress, memory accounting) act around every stage.
#pragma once

#include <torch/script.h>

#include <functional>
#include <string>
#include <vector>

namespace wanrt {

class Component;

/// Which stage of a staged module runs.
enum class StageKind { kPrologue, kBlock, kEpilogue };

/// The stage a hook is called for.
struct StageInfo {
  const std::string* component;  ///< the executor's name
  StageKind kind;
  int block;       ///< block index for kBlock, -1 otherwise
  int num_blocks;  ///< number of blocks of the module
};

/// Callbacks around every stage; the default does nothing. An exception thrown by a hook
/// aborts the run and propagates unchanged.
class StageHooks {
 public:
  virtual ~StageHooks() = default;
  /// Called just before the stage runs (e.g. to bring the block's weights to the device).
  virtual void before_stage(const StageInfo&) {}
  /// Called right after the stage returned (e.g. to release the block's weights).
  virtual void after_stage(const StageInfo&) {}
};

/// How the stages run; the default runs them as they are. A higher layer replaces parts: the
/// sequence-parallel runner (models/) splits the state after the prologue, runs each block in
/// parts with collectives between them, and gathers the state before the epilogue.
class StageRunner {
 public:
  virtual ~StageRunner() = default;
  /// The prologue's output, made into the state the blocks get.
  virtual std::vector<at::Tensor> after_prologue(std::vector<at::Tensor> state) { return state; }
  /// Runs one block on `state`.
  virtual std::vector<at::Tensor> run_block(torch::jit::Module& block,
                                            std::vector<at::Tensor> state);
  /// The last block's output, made into the state the epilogue gets.
  virtual std::vector<at::Tensor> before_epilogue(std::vector<at::Tensor> state) { return state; }
};

/// Runs a staged TorchScript module stage by stage.
class StagedExecutor {
 public:
  /// Reads the blocks of `module` (attribute `blocks_attr`) once; `name` names the component
  /// in hooks and errors. Error(kBundle) when the module lacks prologue, epilogue or blocks.
  StagedExecutor(torch::jit::Module module, std::string name,
                 const std::string& blocks_attr = "blocks");
  /// The executor of a loaded staged component (its name and contract's blocks attribute).
  explicit StagedExecutor(const Component& component);

  /// prologue(inputs) -> each block -> epilogue, calling hooks around each stage. cancelled()
  /// is checked before every stage; when it returns true the run stops with
  /// Error(kCancelled). A failure inside a stage becomes Error(kOutOfMemory) when it is an
  /// allocation failure, else Error(kInternal), naming the component and the stage.
  /// `runner` (null: the default) runs the blocks and reshapes the state around them; its
  /// exceptions are classified like the stages' own.
  std::vector<at::Tensor> run(std::vector<at::Tensor> inputs, StageHooks* hooks = nullptr,
                              const std::function<bool()>& cancelled = {},
                              StageRunner* runner = nullptr);

  /// The module's forward with `inputs` passed as separate positional arguments (the DiT's
  /// forward(x, t, context), the text encoder's forward(ids, mask)); its result (a tensor, a
  /// list or a tuple of tensors) as a vector. For comparison with run().
  std::vector<at::Tensor> forward_monolithic(const std::vector<at::Tensor>& inputs);

  /// Number of blocks.
  int num_blocks() const { return static_cast<int>(blocks_.size()); }
  /// The component name given at construction.
  const std::string& name() const { return name_; }
  /// Block `i` (0-based); Error(kInternal) when out of range.
  torch::jit::Module& block(int i);
  /// The whole module.
  torch::jit::Module& module() { return module_; }

 private:
  std::vector<at::Tensor> run_stage(const StageInfo& info, std::vector<at::Tensor> state,
                                    StageHooks* hooks, const std::function<bool()>& cancelled,
                                    StageRunner* runner);

  torch::jit::Module module_;
  std::string name_;
  std::vector<torch::jit::Module> blocks_;
};

/// "prologue", "block 3" or "epilogue".
std::string stage_name(const StageInfo& info);

}  // namespace wanrt
