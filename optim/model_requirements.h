// What a model needs, in model-agnostic terms: its components (sizes per dtype, blocks,
// where they can run), the stages of a run in order, and a model-specific hook that sizes
// the activations of each stage. The models layer builds these from a manifest.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "optim/optim_types.h"

namespace wanrt {

/// What a component does in the pipeline.
enum class ComponentRole { kTextEncoder, kDenoiser, kVae, kOther };

/// "text_encoder" | "denoiser" | "vae" | "other".
const char* role_name(ComponentRole role) noexcept;

/// One component's sizes and capabilities.
struct ComponentRequirement {
  std::string name;
  ComponentRole role = ComponentRole::kOther;
  Dtype stored = Dtype::kFp32;  ///< dtype of the file
  std::int64_t parameters = 0;  ///< parameter elements
  /// Parameters that stay fp32 when the component is cast (keep-fp32 patterns).
  std::int64_t keep_fp32_parameters = 0;
  /// Of those, the ones inside each block (norms, modulation: the same in every block); 0 when
  /// unknown, and then the half-precision sizes of blocks and shell are scaled proportionally.
  std::int64_t block_keep_fp32_parameters = 0;
  std::int64_t stored_bytes = 0;          ///< bytes as stored
  std::int64_t non_block_bytes = 0;       ///< stored bytes outside the blocks
  std::vector<std::int64_t> block_bytes;  ///< stored bytes per streamable block
  /// Stored bytes of lookup tables a run reads a few rows of (the text encoder's token
  /// embedding, outside the blocks): with memory-mapped weights only the rows read are paged
  /// in, so host estimates leave them out.
  std::int64_t sparse_bytes = 0;
  /// Stored bytes of weights that only an image encode reads (the VAE's encoder): with
  /// memory-mapped weights a run without an image to encode never pages them in.
  std::int64_t encode_only_bytes = 0;
  /// LoRAs merged at load: elements of the parameters they rewrite (held as private copies in
  /// the storage dtype, not as mapped pages), and the host bytes the merge needs while the
  /// component loads (the LoRA tensors read, the float32 work space of one parameter).
  std::int64_t lora_merged_parameters = 0;
  std::int64_t lora_load_bytes = 0;
  std::vector<std::string> inputs;        ///< contract inputs ("x", "t", "context")
  std::vector<std::string> methods;       ///< contract methods
  std::vector<std::string> needs;         ///< inputs produced by other components
  bool can_run_on_cpu = true;             ///< LibTorch CPU runs it (fp32/bf16)
  bool can_run_on_device = true;          ///< a CUDA device runs it

  /// Whether the component has streamable blocks.
  bool staged() const { return !block_bytes.empty(); }
  /// Number of streamable blocks.
  int num_blocks() const { return static_cast<int>(block_bytes.size()); }
  /// Bytes of all weights held in `dtype`: exact (the manifest's) for the stored dtype; fp32:
  /// 4 B per parameter; fp16/bf16: 2 B per parameter, 4 B for the keep-fp32 ones.
  std::int64_t bytes_at(Dtype dtype) const;
  /// bytes_at(dtype) split by the dtype the elements end up in: {half bytes, fp32 bytes}.
  std::pair<std::int64_t, std::int64_t> split_at(Dtype dtype) const;
  /// Non-block bytes and the largest block in `dtype`: exact per block when
  /// block_keep_fp32_parameters is known (the shell gets the rest of bytes_at(dtype)), else the
  /// stored sizes scaled by bytes_at(dtype) / stored_bytes.
  std::int64_t non_block_at(Dtype dtype) const;
  std::int64_t max_block_at(Dtype dtype) const;
};

/// What one stage of a run computes.
enum class RunStage { kTextEncode, kImageEncode, kDenoise, kDecode };

/// One stage, in execution order: the component it runs.
struct StageRequirement {
  std::string name;  ///< "text_encoding", "denoise:dit_high_noise", "vae_decode", ...
  RunStage kind = RunStage::kDenoise;
  std::string component;  ///< the component that runs in it
};

/// One entry of a memory breakdown.
struct MemoryItem {
  enum Kind { kWeights, kActivation, kWorkspace, kReserve, kOther };
  std::string name;  ///< what it is ("x (residual stream)", "dit_low_noise weights")
  std::int64_t bytes = 0;
  Kind kind = kActivation;
  std::string detail;  ///< the formula with its numbers
};

/// A MemoryItem from its four fields (used by every estimate that builds a breakdown).
inline MemoryItem make_memory_item(std::string name, std::int64_t bytes, MemoryItem::Kind kind,
                                   std::string detail) {
  MemoryItem m;
  m.name = std::move(name);
  m.bytes = bytes;
  m.kind = kind;
  m.detail = std::move(detail);
  return m;
}

/// What an activation model needs to size one stage.
struct ActivationQuery {
  Workload workload;
  Dtype compute = Dtype::kBf16;    ///< the stage component's compute dtype
  Dtype vae_dtype = Dtype::kFp32;  ///< compute dtype of the VAE
  AttentionKind attention = AttentionKind::kMath;
  FrameChunking frame_chunking;  ///< denoising windows
  VaeTiling vae_tiling;          ///< decode tiles
};

/// The model-specific part of the estimate: activations and workspace of each stage.
class ActivationModel {
 public:
  virtual ~ActivationModel() = default;
  /// Activation and workspace items of `stage` for `query` (bytes on the device that runs it).
  virtual std::vector<MemoryItem> stage_memory(const StageRequirement& stage,
                                               const ActivationQuery& query) const = 0;
  /// Bytes the run's output occupies in host RAM (e.g. the decoded video).
  virtual std::int64_t output_bytes(const Workload& workload) const = 0;
  /// Latent frames of a video of `frames` frames.
  virtual int latent_frames(int frames) const = 0;
  /// Latent {height, width} of a frame of width x height pixels.
  virtual std::pair<int, int> latent_size(int width, int height) const = 0;
};

/// A model's requirements: components, stages, geometry and the activation hook.
struct ModelRequirements {
  std::string model_id;
  std::string source;  ///< the bundle directory or profile file it was read from
  /// The attention a bundle's components bake in (none for a profile: the planner assumes the
  /// explicit one unless told).
  std::optional<AttentionKind> attention;
  /// Whether the weights are memory-mapped from files (format 2 bundles, and profiles, which
  /// stand for bundles the exporter writes in format 2): host residency "disk" is possible.
  /// Format 1 bundles read their weights onto the heap.
  bool mapped_weights = true;
  std::vector<ComponentRequirement> components;
  std::vector<StageRequirement> stages;  ///< for a run with an image (see stages_for)
  int default_width = 0, default_height = 0, default_frames = 0;
  int size_multiple = 16;       ///< width and height must be multiples of it
  int temporal_stride = 4;      ///< frames must be 1 + stride * n
  bool image_required = false;  ///< the task needs an image (I2V)
  bool image_optional = false;  ///< the task accepts an image (TI2V)
  std::shared_ptr<const ActivationModel> activations;

  /// The component called `name`; Error(kInternal) when absent.
  const ComponentRequirement& component(const std::string& name) const;
  /// The stages of a run of `workload` (the image-encoding stage only with an image).
  std::vector<StageRequirement> stages_for(const Workload& workload) const;
  /// The workload of the model's defaults (no image unless required).
  Workload default_workload() const;
};

}  // namespace wanrt
