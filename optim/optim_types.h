// Vocabulary of the optimization layer: dtypes, offload policies, placements, the request
// geometry the planner sees (Workload), the settings a user may fix (PlanSettings) and the
// plan itself (OptimizationPlan) with the reason behind every choice.
#pragma once

#include <cstdint>
#include <optional>
#include <initializer_list>
#include <string>
#include <vector>

namespace wanrt {

/// Storage or compute precision of a component.
enum class Dtype { kFp32, kBf16, kFp16 };

/// Offload policy (docs/architecture.md, offload policies): none = all resident on the compute
/// device; model = whole components move on and off around their use; sequential = k blocks
/// stay resident, the others stream in (prefetched) and are released after use; full = k = 0
/// for every staged component, the text encoder included.
enum class OffloadPolicy { kNone, kModel, kSequential, kFull };

/// Where the text encoder runs and how long it stays: resident on the device for the whole
/// run, on the device only while it encodes (offloaded after use), or on the CPU.
enum class TextEncoderPlacement { kDevice, kOffloadAfterUse, kCpu };

/// How long host RAM holds the weights: all components for the whole run (the pipeline can
/// be reused), each one loaded at its first use and released after its last, or (format 2
/// bundles, whose weights are memory-mapped) every unit paged in from the file while the
/// residency policy holds it and dropped after ("disk": with sequential or full offload, the
/// host holds the non-block weights and the blocks in flight).
enum class HostResidency { kAll, kOnDemand, kDisk };

/// Attention implementation baked into the DiT: fused SDPA (bundles exported with PyTorch
/// >= 2.0; O(L*d) memory) or the explicit query-chunked softmax (PyTorch 1.13 exports).
enum class AttentionKind { kSdpa, kMath };

/// The device a component computes on.
enum class Placement { kDevice, kCpu };

/// How a component's weights occupy the compute device over the stages of a run.
enum class Residency {
  kWholeRun,      ///< loaded before the first stage, kept to the end
  kFromFirstUse,  ///< loaded at its first use, kept to the end
  kDuringUse,     ///< on the device only in the stages that use it (model offload)
  kStreamed,      ///< blocks streamed in its stages: k resident + in-flight ones
};

const char* dtype_name(Dtype dtype) noexcept;             ///< "fp32" | "bf16" | "fp16"
const char* offload_name(OffloadPolicy policy) noexcept;  ///< "none" | "model" | ...
const char* text_encoder_placement_name(
    TextEncoderPlacement placement) noexcept;  ///< "device" | "offload" | "cpu"
const char* host_residency_name(HostResidency residency) noexcept;  ///< "all" | "on_demand" | "disk"
const char* attention_name(AttentionKind kind) noexcept;            ///< "sdpa" | "math"
const char* residency_name(Residency residency) noexcept;           ///< "whole_run" | ...

/// Bytes per element.
int dtype_size(Dtype dtype) noexcept;
/// fp16 or bf16.
bool is_half(Dtype dtype) noexcept;

/// Parsers of the names above; Error(kUsage) naming `what` (e.g. "--dtype") and the choices.
Dtype parse_dtype(const std::string& text, const std::string& what);
OffloadPolicy parse_offload(const std::string& text, const std::string& what);
TextEncoderPlacement parse_text_encoder_placement(const std::string& text, const std::string& what);
AttentionKind parse_attention(const std::string& text, const std::string& what);
HostResidency parse_host_residency(const std::string& text, const std::string& what);

/// "24GiB", "24 GB", "1.5TiB", "512MiB", "8G", "4096" (bytes). Binary (GiB) and decimal (GB)
/// units are honoured; a bare G/M/K/T is binary. Error(kUsage) naming `what` otherwise.
std::int64_t parse_byte_size(const std::string& text, const std::string& what);

/// The GPU index of a device name: N for "cuda:N", 0 for "cuda", -1 for anything else ("cpu").
int cuda_device_index(const std::string& device);

/// "1.50 GiB" (two decimals, binary units); the planner's reasons use it.
std::string format_gib(std::int64_t bytes);

/// What is generated: the geometry the memory estimate depends on.
struct Workload {
  int width = 0, height = 0;  ///< pixels
  int frames = 0;             ///< video frames
  bool image = false;         ///< image conditioning (per-token timesteps for TI2V)
  /// Processes the request is split across (wanrun --ranks); the estimate is per rank, and
  /// every rank holds its own copy of the weights.
  int ranks = 1;
  /// Of those, how many split the DiT's tokens (sequence parallel): the denoise activations
  /// of a rank are those of tokens / seq_ranks tokens plus the exchange buffers.
  int seq_ranks = 1;
};

struct PlanSettings;

/// A setting of a plan that the user can fix (PlanSettings' fields).
enum class Setting : std::uint8_t {
  kDevice,
  kDtype,
  kOffload,
  kBlocksResident,
  kPrefetch,
  kTextEncoder,
  kAttention,
  kHostResidency,
  kFrameChunk,
  kVaeTile,
  kVaeDtype,
};

/// Its name as in PlanSettings ("blocks_resident", ...).
const char* setting_name(Setting setting) noexcept;

/// A set of settings.
class SettingSet {
 public:
  SettingSet() = default;
  SettingSet(std::initializer_list<Setting> settings);
  /// The fields of `settings` that are set.
  static SettingSet of(const PlanSettings& settings);
  bool contains(Setting s) const noexcept { return (bits_ >> static_cast<int>(s)) & 1U; }
  /// Whether any of `other` is in this set.
  bool intersects(const SettingSet& other) const noexcept { return (bits_ & other.bits_) != 0; }
  void insert(Setting s) noexcept { bits_ |= 1U << static_cast<int>(s); }
  bool empty() const noexcept { return bits_ == 0; }
  int size() const noexcept;
  /// Names in declaration order.
  std::vector<std::string> names() const;
  bool operator==(const SettingSet& other) const noexcept { return bits_ == other.bits_; }

 private:
  std::uint32_t bits_ = 0;
};

/// Settings the user fixed (CLI flags or API); the planner never changes them. Unset fields
/// are the planner's to choose.
struct PlanSettings {
  std::optional<std::string> device;  ///< "cpu" or "cuda" / "cuda:N"
  std::optional<Dtype> dtype;         ///< compute/storage dtype of the staged components
  std::optional<OffloadPolicy> offload;
  std::optional<int> blocks_resident;  ///< k for sequential streaming
  std::optional<int> prefetch;         ///< blocks prefetched ahead while streaming
  std::optional<TextEncoderPlacement> text_encoder;
  std::optional<AttentionKind> attention;
  std::optional<HostResidency> host_residency;
  std::optional<int> frame_chunk;  ///< latent frames per denoising window (0 = off)
  std::optional<int> vae_tile;     ///< latent pixels per VAE decode tile side (0 = off)
  /// dtype the VAE is stored and computed in (default fp32, as the official code decodes).
  std::optional<Dtype> vae_dtype;

  /// Names of the fields that are set ("dtype", "offload", ...).
  std::vector<std::string> names() const { return SettingSet::of(*this).names(); }
};

/// The plan for one component.
struct ComponentPlan {
  std::string name;
  Placement placement = Placement::kDevice;
  Dtype storage = Dtype::kBf16;  ///< dtype the weights are held in
  Dtype compute = Dtype::kBf16;  ///< dtype the matmuls run in (fp32 when upcast per layer)
  Residency residency = Residency::kWholeRun;
  int blocks_resident = -1;  ///< kStreamed: k; -1 = all blocks
  int prefetch = 0;          ///< kStreamed: blocks in flight beyond the running one
};

/// Spatial tiling of the VAE decode (tiles of latent pixels, blended over the overlap).
struct VaeTiling {
  bool enabled = false;
  int tile_h = 0, tile_w = 0;  ///< latent pixels, overlap included
  int overlap = 0;             ///< latent pixels shared by neighbouring tiles
};

/// Sliding-window denoising over latent frames.
struct FrameChunking {
  bool enabled = false;
  int window = 0;   ///< latent frames per window
  int overlap = 0;  ///< latent frames shared by consecutive windows
};

/// One decision of the planner: the setting, its value, why (with the numbers), and whether
/// the user gave it.
struct PlanDecision {
  std::string setting;
  std::string value;
  std::string reason;
  bool user_set = false;
};

/// One rung of the ladder as tried: whether it fit, and the peaks that decided it.
struct LadderStep {
  std::string rung;
  bool fits = false;
  std::int64_t device_peak = 0, host_peak = 0;
  std::string device_peak_stage, host_peak_stage;
  std::string note;
};

/// A complete plan: where and how every component runs, and why.
struct OptimizationPlan {
  std::string device = "cpu";  ///< "cpu" or "cuda:N" (a simulated GPU keeps its index)
  Dtype dtype = Dtype::kBf16;  ///< compute dtype of the staged components
  OffloadPolicy offload = OffloadPolicy::kNone;
  int blocks_resident = -1;  ///< summary: the denoisers' k (-1: not streamed)
  int prefetch = 0;          ///< summary: the denoisers' prefetch depth
  TextEncoderPlacement text_encoder = TextEncoderPlacement::kDevice;
  HostResidency host_residency = HostResidency::kAll;
  AttentionKind attention = AttentionKind::kMath;
  VaeTiling vae_tiling;
  FrameChunking frame_chunking;
  std::vector<ComponentPlan> components;  ///< in the requirements' order

  std::string rung;       ///< the ladder rung the plan comes from
  bool feasible = false;  ///< fits the budgets
  std::vector<PlanDecision> reasons;
  std::vector<LadderStep> ladder;
  std::vector<std::string> guidance;  ///< when infeasible: what would fit
  SettingSet user_set;  ///< settings the user gave (SettingSet::of(PlanSettings))

  /// The plan of component `name`; Error(kInternal) when absent.
  const ComponentPlan& component(const std::string& name) const;
  ComponentPlan& component(const std::string& name);
  /// True when the compute device is a GPU.
  bool on_gpu() const { return device.rfind("cuda", 0) == 0; }
};

}  // namespace wanrt
