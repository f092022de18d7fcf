#include "models/wan22/session.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <optional>

#include "models/wan22/image_prep.h"
#include "models/wan22/sequence_parallel.h"
#include "models/wan22/stages.h"
#include "models/wan22/vae_decoder.h"
#include "optim/optimization_manager.h"
#include "runtime/component.h"
#include "runtime/device_backend.h"
#include "runtime/error.h"
#include "runtime/host_allocator.h"
#include "runtime/memory_monitor.h"
#include "runtime/staged_executor.h"
#include "runtime/tracking_allocator.h"

namespace wanrt::wan22 {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

std::string plan_summary(const OptimizationPlan& plan) {
  std::string text = fmt::format("device {}, dtype {}, offload {}", plan.device,
                                 dtype_name(plan.dtype), offload_name(plan.offload));
  if (plan.offload == OffloadPolicy::kSequential || plan.offload == OffloadPolicy::kFull) {
    text += fmt::format(", blocks resident {}, prefetch {}", plan.blocks_resident, plan.prefetch);
  }
  text += fmt::format(", text encoder {}", text_encoder_placement_name(plan.text_encoder));
  if (plan.host_residency == HostResidency::kOnDemand) text += ", weights loaded on first use";
  if (plan.host_residency == HostResidency::kDisk) text += ", weights paged from disk";
  return text;
}

}  // namespace

OptimizationPlan resident_plan(const BundleManifest& manifest, const std::string& device) {
  OptimizationPlan plan;
  plan.device = device;
  plan.offload = OffloadPolicy::kNone;
  plan.rung = "resident (stored dtype)";
  plan.feasible = true;
  bool all_fp32 = true;
  for (const ComponentEntry& entry : manifest.components) {
    ComponentPlan c;
    c.name = entry.name;
    c.storage = c.compute = parse_dtype(entry.dtype, "component " + entry.name + " dtype");
    c.residency = Residency::kWholeRun;
    all_fp32 = all_fp32 && c.storage == Dtype::kFp32;
    plan.components.push_back(c);
  }
  if (all_fp32) plan.dtype = Dtype::kFp32;
  return plan;
}

struct Session::Impl final : ComponentRunner {
  std::shared_ptr<const Model> model;
  // What the session holds of a component while it uses it: the model's component (keeps it
  // loaded), the session's clone of it, and the executor of a staged one.
  struct Held {
    std::shared_ptr<const Component> source;
    Component own;
    std::unique_ptr<StagedExecutor> executor;
  };
  std::map<std::string, std::unique_ptr<Held>> held;
  std::unique_ptr<ResidencyManager> residency;
  std::unique_ptr<DeviceBackend> backend;
  bool fallback = true;
  bool on_demand = false;  // HostResidency::kOnDemand: take at first use, let go after last
  std::shared_ptr<dist::Parallelism> parallel;  // null: one process

  // Seconds spent in collectives by this rank's groups so far.
  double comm_seconds() const {
    if (!parallel) return 0;
    return parallel->world->comm_seconds() + parallel->cfg->comm_seconds() +
           parallel->seq->comm_seconds();
  }

  // Takes component `name` from the model (loading it if needed), clones it for this session
  // and hands the clone to the residency manager (which casts it to its planned dtype).
  Held& take(const std::string& name) {
    const auto it = held.find(name);
    if (it != held.end()) return *it->second;
    std::shared_ptr<const Component> source = model->component(name);
    Component own = source->share();
    auto h = std::make_unique<Held>(Held{std::move(source), std::move(own), nullptr});
    if (h->own.entry().staged()) h->executor = std::make_unique<StagedExecutor>(h->own);
    residency->attach({name, component_role(name), h->own.module(), h->own.blocks(),
                       h->own.entry().keep_fp32,
                       h->own.weights() ? h->own.weights()->file : nullptr});
    return *held.emplace(name, std::move(h)).first->second;
  }

  // With host residency on_demand: lets go of component `name` after its last use of the run.
  void let_go(const std::string& name) {
    if (!on_demand || held.count(name) == 0) return;
    residency->detach(name);
    held.erase(name);
    trim_host_memory();
  }

  // Runs `fn` (one stage of `component`); after an out-of-memory error steps the plan down and
  // runs it again, until it fits or nothing cheaper is left.
  template <class F>
  auto guarded(const std::string& component, F&& fn) -> decltype(fn()) {
    for (;;) {
      try {
        return fn();
      } catch (const std::exception& e) {
        if (!fallback || !is_out_of_memory(e)) throw;
        step_down(component, e);
      }
    }
  }

  // Steps the plan down after `error` (ResidencyManager::step_down also steps on while the
  // cheaper plan's weights do not fit either); when nothing cheaper is left, says what would.
  void step_down(const std::string& component, const std::exception& error) {
    const std::string message = first_line(error.what());
    if (backend) backend->empty_cache();
    if (residency->step_down(component, message)) return;
    const std::string least = format_gib(residency->minimum_device_bytes());
    throw Error(ErrorCategory::kOutOfMemory,
                fmt::format("{}; no cheaper plan is left (the smallest needs {} of device memory "
                            "for weights)",
                            message, least),
                fmt::format("give the device at least {} plus activations (--vram-budget), lower "
                            "--size or --frames, or run on the CPU (--device cpu)",
                            least));
  }

  // ---- ComponentRunner ------------------------------------------------------------------
  const std::function<bool()>* cancelled = nullptr;  // the current run's

  std::vector<at::Tensor> run_staged(const std::string& name, std::vector<at::Tensor> inputs,
                                     StageRunner* runner = nullptr) {
    Held& h = take(name);
    const at::Device device = residency->device_of(name);
    for (at::Tensor& t : inputs) t = t.to(device);
    return guarded(name, [&] {
      residency->enter(name);
      return h.executor->run(inputs, residency->hooks(name), *cancelled, runner);
    });
  }

  at::Tensor encode_tokens(const at::Tensor& ids, const at::Tensor& mask) override {
    return run_staged(component::kTextEncoder, {ids, mask}).at(0).to(at::kCPU).to(at::kFloat);
  }

  at::Tensor run_dit(const std::string& expert, const at::Tensor& x, const at::Tensor& t,
                     const at::Tensor& context) override {
    std::optional<SequenceParallelRunner> split;
    if (parallel && parallel->layout.seq > 1) {
      split.emplace(*parallel->seq, model->spec().dit_heads);
    }
    return run_staged(expert, {x, t, context}, split ? &*split : nullptr)
        .at(0)
        .to(at::kCPU)
        .to(at::kFloat);
  }

  at::Tensor vae_encode(const at::Tensor& video) override {
    Held& h = take(component::kVae);
    const at::Tensor out = guarded(component::kVae, [&] {
      residency->enter(component::kVae);
      return h.own.module()
          .get_method("encode")({video.to(residency->device_of(component::kVae),
                                          residency->compute_dtype(component::kVae))})
          .toTensor()
          .to(at::kCPU)
          .to(at::kFloat);
    });
    residency->leave(component::kVae);
    return out;
  }

  std::int64_t vae_decode(const at::Tensor& latent, const VaeDecodeOptions& options,
                          const std::function<void(const at::Tensor&)>& sink) override {
    Held& h = take(component::kVae);
    const WanSpec& spec = model->spec();
    const VaeDecoder decoder(h.own.module(), spec.vae_stride[0], spec.vae_stride[1]);
    // A retry after a fallback decodes from the start again; the frames already handed on are
    // skipped (decoding is deterministic), so the sink sees each frame once.
    std::int64_t emitted = 0;
    return guarded(component::kVae, [&] {
      residency->enter(component::kVae);
      std::int64_t seen = 0;
      const at::Tensor z = latent.to(residency->device_of(component::kVae),
                                     residency->compute_dtype(component::kVae));
      return decoder.decode(z, options, [&](const at::Tensor& chunk) {
        const std::int64_t n = chunk.size(1);
        const std::int64_t skip = std::min(n, std::max<std::int64_t>(0, emitted - seen));
        seen += n;
        if (skip == n) return;
        const at::Tensor video = skip > 0 ? chunk.slice(1, skip) : chunk;
        emitted += video.size(1);
        sink(video);
      });
    });
  }

  void finished(const std::string& name) override {
    residency->leave(name);
    let_go(name);
  }
};

Session::Session(std::shared_ptr<const Model> model, const SessionOptions& options)
    : impl_(std::make_unique<Impl>()) {
  Impl& p = *impl_;
  p.model = std::move(model);
  if (!p.model) throw Error(ErrorCategory::kUsage, "a session needs a model", "load one first");
  // The plan: dtypes are applied when a component is taken (on the session's clone); weights
  // move to the compute device during generate() as each component's residency says.
  OptimizationPlan plan = options.plan ? *options.plan : resident_plan(p.model->manifest());
  if (!plan.on_gpu()) {
    // Without a GPU the CPU is the compute device: the ledger counts the weights the plan
    // holds "on the device" (they stay in RAM either way), in the order a GPU run would.
    for (ComponentPlan& c : plan.components) {
      c.placement = Placement::kDevice;
      if (plan.offload == OffloadPolicy::kNone) c.residency = Residency::kWholeRun;
    }
  }
  if (plan.on_gpu()) p.backend = make_cuda_backend(cuda_device_index(plan.device));
  p.on_demand = plan.host_residency == HostResidency::kOnDemand;
  p.residency = OptimizationManager().apply_memory_optimizations({}, plan, options.vram_budget);
  // on_demand and disk take each component at its first use (disk keeps it afterwards).
  if (plan.host_residency == HostResidency::kAll) {
    for (const std::string& name : p.model->spec().components()) p.take(name);
  }
  p.parallel = options.parallel;
  p.fallback = options.fallback && !(p.parallel && p.parallel->world->size() > 1);
}

Session::~Session() = default;

const Model& Session::model() const { return *impl_->model; }
const ResidencyManager& Session::residency() const { return *impl_->residency; }

ResolvedRequest Session::resolve(const GenerateRequest& request) const {
  return resolve_request(impl_->model->spec(), request);
}

GenerateResult Session::generate(const GenerateRequest& request, const Callbacks& callbacks) {
  InferenceScope inference;
  Impl& p = *impl_;
  const WanSpec& spec = p.model->spec();
  GenerateResult result;
  result.request = resolve_request(spec, request);
  const ResolvedRequest& r = result.request;
  result.fps = spec.sampling.fps;
  p.cancelled = &callbacks.cancelled;
  MemoryMonitor memory;
  memory.reset_peak();
  ResidencyManager& residency = *p.residency;
  const std::size_t fallbacks_before = residency.fallbacks().size();
  residency.ledger().reset_peak();
  p.guarded("pipeline", [&] { residency.begin_run(); });
  // Whatever happens, the run ends with no weights held on the device.
  struct EndRun {
    Impl& p;
    ~EndRun() {
      try {
        p.residency->end_run();
      } catch (...) {
      }
      p.cancelled = nullptr;
    }
  } end_run{p};
  // Each stage gets its own peak window; the run's peak is the largest of them.
  const bool tracking = cpu_tracking_installed();
  auto reset_peaks = [&] {
    memory.reset_peak();
    if (tracking) reset_cpu_tracked_peak();
    if (p.backend) p.backend->reset_peak_stats();
  };
  reset_peaks();
  auto stage_start = Clock::now();
  auto end_stage = [&](const char* stage) {
    StageTime t;
    t.stage = stage;
    t.seconds = seconds_since(stage_start);
    t.peak_rss_bytes = memory.sample().peak_rss;
    if (tracking) t.peak_tracked_bytes = cpu_tracked_peak();
    if (p.backend) t.peak_device_bytes = p.backend->allocator_stats().peak_allocated;
    // Give back what the allocator kept once the stage's temporaries are gone, so the next
    // stage starts from the memory really in use; what that gave back is the retention the
    // estimate counts (runtime/host_allocator.h).
    const std::int64_t rss_before_trim = current_rss();
    trim_host_memory();
    t.retained_bytes = std::max<std::int64_t>(0, rss_before_trim - current_rss());
    result.peak_rss_bytes = std::max(result.peak_rss_bytes, t.peak_rss_bytes);
    result.times.push_back(t);
    reset_peaks();
    stage_start = Clock::now();
  };

  set_host_allocator_stage(HostStage::kTransformer);
  const PromptContexts contexts = encode_prompts(p, p.model->tokenizer(), r, callbacks);
  end_stage("text_encoder");

  ImageConditioning image;
  if (r.has_image) {
    set_host_allocator_stage(HostStage::kVae);
    image = condition_on_image(p, spec, r, *request.image);
    end_stage("vae_encode");
  }

  set_host_allocator_stage(HostStage::kTransformer);
  const double comm_before = p.comm_seconds();
  DenoiseOutcome denoised = denoise(p, spec, r, contexts, image,
                                    initial_noise(r.seed, r.latent_shape(spec)), callbacks,
                                    p.parallel.get());
  result.expert_trace = std::move(denoised.expert_trace);
  result.dit_calls = denoised.dit_calls;
  result.denoise_windows = denoised.windows;
  end_stage("denoise");

  result.latent = denoised.latent;
  result.comm_seconds = p.comm_seconds() - comm_before;
  if (p.parallel) {
    result.parallel = p.parallel->layout.describe();
    result.parallel_backend = p.parallel->world->backend();
  }
  // Every rank ends denoising with the same latent; one decodes it.
  result.decoded = !p.parallel || p.parallel->leader();
  if (result.decoded) {
    set_host_allocator_stage(HostStage::kVae);
    DecodeOutcome decoded = decode(p, spec, r, result.latent, callbacks);
    result.frame_count = decoded.frame_count;
    result.vae_tiles = decoded.tiles;
    if (decoded.video.defined()) {
      result.video = std::move(decoded.video);
      result.frames = frames_to_uint8(result.video);
    }
    end_stage("vae_decode");
  }
  result.ledger_peak_bytes = residency.ledger().peak();
  result.ledger_host_peak_bytes = residency.ledger().host_peak();
  result.fallbacks.assign(
      residency.fallbacks().begin() + static_cast<std::ptrdiff_t>(fallbacks_before),
      residency.fallbacks().end());
  result.plan_summary = plan_summary(residency.plan());
  return result;
}

}  // namespace wanrt::wan22
