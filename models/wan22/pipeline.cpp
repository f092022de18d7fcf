#include "models/wan22/pipeline.h"

#include <fmt/format.h>
#include <torch/csrc/jit/runtime/graph_executor.h>

#include <algorithm>
#include <chrono>
#include <map>

#include "chunking/chunked_processor.h"
#include "models/wan22/image_prep.h"
#include "optim/optimization_manager.h"
#include "models/wan22/scheduler.h"
#include "models/wan22/tokenizer.h"
#include "models/wan22/vae_decoder.h"
#include "runtime/component.h"
#include "runtime/device_backend.h"
#include "runtime/error.h"
#include "runtime/memory_monitor.h"
#include "runtime/staged_executor.h"
#include "runtime/threads.h"
#include "runtime/tracking_allocator.h"

namespace wanrt::wan22 {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

void check_cancelled(const Callbacks& callbacks, const char* where) {
  if (callbacks.cancelled && callbacks.cancelled()) {
    throw Error(ErrorCategory::kCancelled, fmt::format("cancelled during {}", where));
  }
}

void report(const Callbacks& callbacks, const char* stage, int step, int total) {
  if (callbacks.progress) callbacks.progress(ProgressEvent{stage, step, total});
}

std::string plan_summary(const OptimizationPlan& plan) {
  std::string text = fmt::format("device {}, dtype {}, offload {}", plan.device,
                                 dtype_name(plan.dtype), offload_name(plan.offload));
  if (plan.offload == OffloadPolicy::kSequential || plan.offload == OffloadPolicy::kFull) {
    text += fmt::format(", blocks resident {}, prefetch {}", plan.blocks_resident, plan.prefetch);
  }
  text += fmt::format(", text encoder {}", text_encoder_placement_name(plan.text_encoder));
  if (plan.host_residency == HostResidency::kOnDemand) text += ", weights loaded on first use";
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

struct Pipeline::Impl {
  BundleManifest manifest;
  WanSpec spec;
  std::unique_ptr<Tokenizer> tokenizer;
  // Loaded components (all of them, or with host residency on_demand those in use) and the
  // executors of the staged ones.
  std::map<std::string, std::unique_ptr<Component>> components;
  std::map<std::string, std::unique_ptr<StagedExecutor>> executors;
  std::unique_ptr<ResidencyManager> residency;
  std::unique_ptr<DeviceBackend> backend;
  bool fallback = true;
  bool on_demand = false;  // HostResidency::kOnDemand: load at first use, free after last
  double load_seconds = 0;

  // Loads component `name` to host memory and hands it to the residency manager (which casts
  // it to its planned dtype); no-op when loaded.
  void ensure_loaded(const std::string& name) {
    if (components.count(name) != 0) return;
    const auto start = Clock::now();
    auto component = std::make_unique<Component>(Component::load(manifest, name));
    const ComponentRole role = name == "text_encoder" ? ComponentRole::kTextEncoder
                               : name == "vae"        ? ComponentRole::kVae
                                                      : ComponentRole::kDenoiser;
    if (component->entry().staged()) {
      executors[name] = std::make_unique<StagedExecutor>(*component);
    }
    residency->attach(
        {name, role, component->module(), component->blocks(), component->entry().keep_fp32});
    components[name] = std::move(component);
    load_seconds += seconds_since(start);
  }

  // With host residency on_demand: drops component `name` after its last use of the run.
  void unload_if_on_demand(const std::string& name) {
    if (!on_demand || components.count(name) == 0) return;
    residency->detach(name);
    executors.erase(name);
    components.erase(name);
    release_host_memory();
  }

  Component& component(const std::string& name) {
    ensure_loaded(name);
    return *components.at(name);
  }

  // Runs `fn` (one stage of `component`); after an out-of-memory error steps the plan down and
  // runs it again, until it fits or nothing cheaper is left.
  template <class F>
  auto guarded(const std::string& component, F&& fn) -> decltype(fn()) {
    for (;;) {
      try {
        return fn();
      } catch (const Error& e) {
        if (e.category() != ErrorCategory::kOutOfMemory || !fallback) throw;
        step_down(component, e);
      }
    }
  }

  // Steps the plan down after `error` (ResidencyManager::step_down also steps on while the
  // cheaper plan's weights do not fit either); when nothing cheaper is left, says what would.
  void step_down(const std::string& component, const Error& error) {
    if (backend) backend->empty_cache();
    if (residency->step_down(component, error.what())) return;
    const std::string least = format_gib(residency->minimum_device_bytes());
    throw Error(ErrorCategory::kOutOfMemory,
                fmt::format("{}; no cheaper plan is left (the smallest needs {} of device memory "
                            "for weights)",
                            error.what(), least),
                fmt::format("give the device at least {} plus activations (--vram-budget), lower "
                            "--size or --frames, or run on the CPU (--device cpu)",
                            least));
  }

  at::Device device_of(const std::string& component) const {
    return residency->device_of(component);
  }

  // Prompt -> context [1, text_len, dim] float32, zero beyond the real tokens.
  at::Tensor encode_text(const std::string& text, const Callbacks& callbacks) {
    const Tokenizer::Encoded tokens = tokenizer->encode(text);
    ensure_loaded("text_encoder");
    const at::Device device = device_of("text_encoder");
    const std::vector<at::Tensor> out = guarded("text_encoder", [&] {
      residency->enter("text_encoder");
      return executors.at("text_encoder")->run({tokens.ids.to(device), tokens.mask.to(device)},
                                residency->hooks("text_encoder"), callbacks.cancelled);
    });
    at::Tensor hidden = out.at(0).to(at::kCPU).to(at::kFloat);
    at::Tensor context = at::zeros_like(hidden.slice(0, 0, 1));
    context.slice(1, 0, tokens.length).copy_(hidden.slice(0, 0, 1).slice(1, 0, tokens.length));
    return context;
  }

  at::Tensor run_dit(const std::string& name, const at::Tensor& x, const at::Tensor& t,
                     const at::Tensor& context, const Callbacks& callbacks, int& calls) {
    ++calls;
    ensure_loaded(name);
    const at::Device device = device_of(name);
    return guarded(name, [&] {
      residency->enter(name);
      return executors.at(name)
          ->run({x.to(device), t.to(device), context.to(device)}, residency->hooks(name),
                callbacks.cancelled)
          .at(0)
          .to(at::kCPU)
          .to(at::kFloat);
    });
  }

  at::Tensor vae_encode(const at::Tensor& video) {
    ensure_loaded("vae");
    const at::Tensor out = guarded("vae", [&] {
      residency->enter("vae");
      return component("vae").module()
          .get_method("encode")({video.to(device_of("vae"), residency->compute_dtype("vae"))})
          .toTensor()
          .to(at::kCPU)
          .to(at::kFloat);
    });
    residency->leave("vae");
    return out;
  }
};

Pipeline::Pipeline(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Pipeline::~Pipeline() = default;

std::unique_ptr<Pipeline> Pipeline::load(const std::string& bundle_dir, const LoadOptions& options) {
  configure_threads(options.threads);
  torch::jit::setGraphExecutorOptimize(options.jit_optimize);
  auto impl = std::make_unique<Impl>();
  BundleOptions bundle_options;
  bundle_options.verify = options.verify;
  bundle_options.hash_progress = options.hash_progress;
  impl->manifest = read_bundle(bundle_dir, bundle_options);
  impl->spec = read_wan_spec(impl->manifest);

  const YamlFile& file = impl->manifest.yaml;
  const YAML::Node& tok = impl->manifest.tokenizer;
  const int text_len = file.get<int>(tok, "text_len");
  if (text_len != impl->spec.text_len) {
    file.fail(tok, "text_len",
              fmt::format("{} differs from architecture.dit.text_len {}", text_len,
                          impl->spec.text_len));
  }
  impl->tokenizer = std::make_unique<Tokenizer>(impl->manifest.tokenizer_path, text_len);

  // The plan: dtypes are applied now (in place, on the host copies); weights move to the
  // compute device during generate() as each component's residency says.
  OptimizationPlan plan = options.plan ? *options.plan : resident_plan(impl->manifest);
  if (!plan.on_gpu()) {
    // Without a GPU the CPU is the compute device: the ledger counts the weights the plan
    // holds "on the device" (they stay in RAM either way), in the order a GPU run would.
    for (ComponentPlan& c : plan.components) {
      c.placement = Placement::kDevice;
      if (plan.offload == OffloadPolicy::kNone) c.residency = Residency::kWholeRun;
    }
  }
  if (plan.on_gpu()) impl->backend = make_cuda_backend(cuda_device_index(plan.device));
  impl->on_demand = plan.host_residency == HostResidency::kOnDemand;
  impl->residency = OptimizationManager().apply_memory_optimizations({}, plan,
                                                                     options.vram_budget);
  if (!impl->on_demand) {
    impl->ensure_loaded("text_encoder");
    for (const auto& name : impl->spec.experts) impl->ensure_loaded(name);
    impl->ensure_loaded("vae");
  }
  impl->fallback = options.fallback;
  return std::unique_ptr<Pipeline>(new Pipeline(std::move(impl)));
}

const WanSpec& Pipeline::spec() const { return impl_->spec; }
const BundleManifest& Pipeline::manifest() const { return impl_->manifest; }
double Pipeline::load_seconds() const { return impl_->load_seconds; }
const ResidencyManager& Pipeline::residency() const { return *impl_->residency; }

ResolvedRequest Pipeline::resolve(const GenerateRequest& request) const {
  return resolve_request(impl_->spec, request);
}

GenerateResult Pipeline::generate(const GenerateRequest& request, const Callbacks& callbacks) {
  InferenceScope inference;
  Impl& p = *impl_;
  const WanSpec& spec = p.spec;
  GenerateResult result;
  result.request = resolve_request(spec, request);
  const ResolvedRequest& r = result.request;
  result.fps = spec.sampling.fps;
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
  auto end_stage = [&](const char* stage, Clock::time_point start) {
    StageTime t;
    t.stage = stage;
    t.seconds = seconds_since(start);
    t.peak_rss_bytes = memory.sample().peak_rss;
    if (tracking) t.peak_tracked_bytes = cpu_tracked_peak();
    if (p.backend) t.peak_device_bytes = p.backend->allocator_stats().peak_allocated;
    result.peak_rss_bytes = std::max(result.peak_rss_bytes, t.peak_rss_bytes);
    result.times.push_back(t);
    reset_peaks();
  };

  auto stage_start = Clock::now();
  report(callbacks, "text_encoder", 0, 2);
  const at::Tensor context = p.encode_text(r.prompt, callbacks);
  report(callbacks, "text_encoder", 1, 2);
  const at::Tensor context_null = p.encode_text(r.negative_prompt, callbacks);
  report(callbacks, "text_encoder", 2, 2);
  residency.leave("text_encoder");
  p.unload_if_on_demand("text_encoder");
  end_stage("text_encoder", stage_start);

  const std::vector<int64_t> shape = r.latent_shape(spec);
  at::Tensor latent = initial_noise(r.seed, shape);

  // Image conditioning: I2V concatenates [mask, image latent] to the DiT input; TI2V pins
  // latent frame 0 to the image latent and gives its tokens timestep 0.
  at::Tensor y, keep, z0, t_mask;
  if (r.has_image) {
    stage_start = Clock::now();
    const at::Tensor img = prepare_image(*request.image, r.width, r.height);
    if (spec.task == "i2v") {
      at::Tensor video =
          at::cat({img.unsqueeze(1), at::zeros({3, r.frames - 1, r.height, r.width})}, 1);
      const at::Tensor y_lat = p.vae_encode(video.unsqueeze(0))[0].to(at::kFloat);
      y = at::cat({i2v_mask(r.frames, shape[2], shape[3], spec.vae_stride[0]), y_lat});
    } else {
      z0 = p.vae_encode(img.unsqueeze(0).unsqueeze(2))[0].to(at::kFloat);
      keep = at::ones_like(latent);
      keep.select(1, 0).zero_();
      latent = (1.0 - keep) * z0 + keep * latent;
      t_mask = keep[0]
                   .slice(1, 0, c10::nullopt, spec.patch[1])
                   .slice(2, 0, c10::nullopt, spec.patch[2])
                   .flatten();
    }
    end_stage("vae_encode", stage_start);
  }

  stage_start = Clock::now();
  auto scheduler = make_scheduler(r.sampler, spec.sampling.num_train_timesteps);
  scheduler->set_timesteps(r.steps, r.shift);
  const auto& timesteps = scheduler->timesteps();
  const bool has_boundary = spec.sampling.boundary.has_value();
  const double boundary_t =
      has_boundary ? *spec.sampling.boundary * spec.sampling.num_train_timesteps : 0.0;
  const BlendKind blend = parse_blend_kind(r.blend);
  const ChunkPlan windows = r.window_plan(spec);
  result.denoise_windows = static_cast<int>(windows.chunks.size());
  const ChunkedProcessor window_processor(windows.chunk_size, windows.overlap,
                                          /*memory_cleanup=*/true);
  // TI2V per-token timestep mask as a [lat_f, h / patch, w / patch] grid, sliced per window.
  const at::Tensor t_grid = t_mask.defined()
                                ? t_mask.view({shape[1], shape[2] / spec.patch[1],
                                               shape[3] / spec.patch[2]})
                                : at::Tensor();
  const int total = static_cast<int>(timesteps.size());
  std::string active_expert;
  for (int i = 0; i < total; ++i) {
    check_cancelled(callbacks, fmt::format("denoising step {}", i + 1).c_str());
    const std::int64_t t_int = timesteps[i];
    const bool high = has_boundary && static_cast<double>(t_int) >= boundary_t;
    const std::string& name =
        spec.is_moe() ? (high ? spec.experts[0] : spec.experts[1]) : spec.experts[0];
    const double g = high ? r.guide_high : r.guide_low;
    if (name != active_expert) {
      if (!active_expert.empty()) {
        residency.leave(active_expert);
        p.unload_if_on_demand(active_expert);  // the expert switch happens once
      }
      active_expert = name;
    }
    const at::Tensor t_val = at::full({1}, static_cast<float>(t_int), at::kFloat);
    // The guided velocity of latent frames [start, end): the whole latent without windows.
    auto guided_velocity = [&](const Chunk& w) {
      const bool whole = w.start == 0 && w.end == shape[1];
      const at::Tensor lat = whole ? latent : latent.slice(1, w.start, w.end);
      at::Tensor t_in = t_val;
      if (t_mask.defined()) {
        const at::Tensor mask = whole ? t_mask : t_grid.slice(0, w.start, w.end).flatten();
        t_in = (mask * t_val).unsqueeze(0);
      }
      const at::Tensor x_in =
          (y.defined() ? at::cat({lat, whole ? y : y.slice(1, w.start, w.end)}) : lat)
              .unsqueeze(0);
      const at::Tensor cond =
          p.run_dit(name, x_in, t_in, context, callbacks, result.dit_calls)[0];
      const at::Tensor uncond =
          p.run_dit(name, x_in, t_in, context_null, callbacks, result.dit_calls)[0];
      return uncond + g * (cond - uncond);
    };
    at::Tensor v;
    if (r.chunk_frames <= 0) {
      v = guided_velocity(Chunk{0, shape[1]});
    } else {
      ChunkedRunOptions run;
      run.blend = blend;
      run.label = fmt::format("denoising step {} window", i + 1);
      run.cancelled = callbacks.cancelled;
      run.release_memory = release_host_memory;
      v = window_processor.process_chunked_generation(at::zeros_like(latent), 1,
                                                      guided_velocity, run);
    }
    latent = scheduler->step(v, i, latent);
    if (keep.defined()) latent = (1.0 - keep) * z0 + keep * latent;
    result.expert_trace.push_back(name);
    report(callbacks, "denoise", i + 1, total);
  }
  if (!active_expert.empty()) {
    residency.leave(active_expert);
    p.unload_if_on_demand(active_expert);
  }
  end_stage("denoise", stage_start);

  // Causal decode one latent frame at a time: the same frames as decode(), flat memory; the
  // frames go to on_frames as they come, or are collected.
  stage_start = Clock::now();
  result.latent = latent;
  VaeDecodeOptions decode;
  decode.chunk_latent_frames = 1;
  if (r.vae_tile > 0) decode.tiling = vae_tiling_for_pixels(r.vae_tile, spec.vae_stride[1]);
  decode.blend = blend;
  decode.cancelled = callbacks.cancelled;
  decode.progress = [&callbacks](int done, int all) { report(callbacks, "vae_decode", done, all); };
  decode.release_memory = release_host_memory;
  result.vae_tiles = static_cast<int>(VaeDecoder::tile_plan(shape[2], decode.tiling).chunks.size() *
                                      VaeDecoder::tile_plan(shape[3], decode.tiling).chunks.size());
  std::vector<at::Tensor> videos;
  const VaeDecoder decoder(p.component("vae").module(), spec.vae_stride[0], spec.vae_stride[1]);
  // A retry after a fallback decodes from the start again; the frames already handed on are
  // skipped (decoding is deterministic), so a streamed output sees each frame once.
  std::int64_t emitted = 0;
  result.frame_count = p.guarded("vae", [&] {
    residency.enter("vae");
    std::int64_t seen = 0;
    const at::Tensor z = latent.to(p.device_of("vae"), residency.compute_dtype("vae"));
    return decoder.decode(z, decode, [&](const at::Tensor& chunk) {
      const std::int64_t n = chunk.size(1);
      const std::int64_t skip = std::min(n, std::max<std::int64_t>(0, emitted - seen));
      seen += n;
      if (skip == n) return;
      const at::Tensor video = skip > 0 ? chunk.slice(1, skip) : chunk;
      emitted += video.size(1);
      if (callbacks.on_frames) {
        callbacks.on_frames(frames_to_uint8(video));
      } else {
        videos.push_back(video);
      }
    });
  });
  residency.leave("vae");
  p.unload_if_on_demand("vae");
  if (!callbacks.on_frames) {
    result.video = videos.size() == 1 ? videos[0] : at::cat(videos, 1);
    videos.clear();
    result.frames = frames_to_uint8(result.video);
  }
  end_stage("vae_decode", stage_start);
  result.ledger_peak_bytes = residency.ledger().peak();
  result.fallbacks.assign(residency.fallbacks().begin() + static_cast<std::ptrdiff_t>(fallbacks_before),
                          residency.fallbacks().end());
  result.plan_summary = plan_summary(residency.plan());
  return result;
}

}  // namespace wanrt::wan22
