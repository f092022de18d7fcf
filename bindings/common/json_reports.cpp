#include "bindings/common/json_reports.h"

#include <ATen/Parallel.h>
#include <fmt/format.h>

#include <cstdlib>

#include "runtime/host_allocator.h"

namespace wanrt::bindings {
namespace {

const char* kind_name(MemoryItem::Kind kind) {
  switch (kind) {
    case MemoryItem::kWeights:
      return "weights";
    case MemoryItem::kActivation:
      return "activation";
    case MemoryItem::kWorkspace:
      return "workspace";
    case MemoryItem::kReserve:
      return "reserve";
    case MemoryItem::kOther:
      return "other";
  }
  return "other";
}

nlohmann::json items_json(const std::vector<MemoryItem>& items) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& m : items) {
    out.push_back(
        {{"name", m.name}, {"kind", kind_name(m.kind)}, {"bytes", m.bytes}, {"detail", m.detail}});
  }
  return out;
}

}  // namespace

nlohmann::json resources_json(const SystemResources& r) {
  nlohmann::json gpus = nlohmann::json::array();
  for (const auto& gpu : r.gpus) {
    gpus.push_back({{"index", gpu.index},
                    {"name", gpu.name},
                    {"compute_capability", fmt::format("{}.{}", gpu.cc_major, gpu.cc_minor)},
                    {"total_bytes", gpu.total_bytes},
                    {"free_bytes", gpu.free_bytes},
                    {"bf16", gpu.bf16},
                    {"fp16", gpu.fp16}});
  }
  return {{"cpu_cores", r.cpu_cores},
          {"cpu_model", r.cpu_model},
          {"avx512_bf16", r.cpu_avx512_bf16},
          {"amx", r.cpu_amx},
          {"ram_total", r.ram_total},
          {"ram_available", r.ram_available},
          {"gpus", gpus}};
}

nlohmann::json components_json(const OptimizationPlan& plan) {
  nlohmann::json out = nlohmann::json::array();
  for (const ComponentPlan& c : plan.components) {
    out.push_back({{"name", c.name},
                   {"placement", c.placement == Placement::kCpu ? "cpu" : "device"},
                   {"storage", dtype_name(c.storage)},
                   {"compute", dtype_name(c.compute)},
                   {"residency", residency_name(c.residency)},
                   {"blocks_resident", c.blocks_resident},
                   {"prefetch", c.prefetch}});
  }
  return out;
}

nlohmann::json result_json(const OptimizationResult& r) {
  const OptimizationPlan& p = r.plan;
  const nlohmann::json components = components_json(p);
  nlohmann::json reasons = nlohmann::json::array();
  for (const auto& d : p.reasons) {
    reasons.push_back({{"setting", d.setting},
                       {"value", d.value},
                       {"reason", d.reason},
                       {"user_set", d.user_set}});
  }
  nlohmann::json ladder = nlohmann::json::array();
  for (const auto& s : p.ladder) {
    ladder.push_back({{"rung", s.rung},
                      {"fits", s.fits},
                      {"device_peak", s.device_peak},
                      {"host_peak", s.host_peak},
                      {"device_peak_stage", s.device_peak_stage},
                      {"host_peak_stage", s.host_peak_stage},
                      {"note", s.note}});
  }
  const MemoryEstimate& e = r.estimate;
  nlohmann::json stages = nlohmann::json::array();
  for (const auto& s : e.stages) {
    stages.push_back(
        {{"name", s.name},
         {"component", s.component},
         {"on_cpu", s.on_cpu},
         {"device_total", s.device_total},
         {"host_total", s.host_total},
         {"device_weights", {{"half", s.device_half_weights}, {"fp32", s.device_fp32_weights}}},
         {"device_activations", s.device_bytes(MemoryItem::kActivation)},
         {"device_workspace", s.device_bytes(MemoryItem::kWorkspace)},
         {"device_reserve", s.device_bytes(MemoryItem::kReserve)},
         {"device_items", items_json(s.device)},
         {"host_items", items_json(s.host)}});
  }
  nlohmann::json indep_components = nlohmann::json::array();
  for (const auto& c : r.independence.components) {
    indep_components.push_back({{"component", c.component},
                                {"role", role_name(c.role)},
                                {"devices", c.devices},
                                {"needs", c.needs},
                                {"bytes", c.bytes},
                                {"blocks", c.blocks},
                                {"fits_device_alone", c.fits_device_alone},
                                {"fits_host_alone", c.fits_host_alone},
                                {"summary", c.summary}});
  }
  nlohmann::json fallbacks = nlohmann::json::array();
  for (const auto& f : r.independence.fallbacks) {
    fallbacks.push_back(
        {{"name", f.name}, {"applicable", f.applicable}, {"description", f.description}});
  }
  return {
      {"model_id", r.model_id},
      {"source", r.source},
      {"workload",
       {{"width", r.workload.width},
        {"height", r.workload.height},
        {"frames", r.workload.frames},
        {"image", r.workload.image},
        {"ranks", r.workload.ranks},
        {"seq_ranks", r.workload.seq_ranks}}},
      {"machine", resources_json(r.resources)},
      {"feasible", p.feasible},
      {"rung", p.rung},
      {"plan",
       {{"device", p.device},
        {"dtype", dtype_name(p.dtype)},
        {"offload", offload_name(p.offload)},
        {"blocks_resident", p.blocks_resident},
        {"prefetch", p.prefetch},
        {"text_encoder", text_encoder_placement_name(p.text_encoder)},
        {"host_residency", host_residency_name(p.host_residency)},
        {"attention", attention_name(p.attention)},
        {"vae_tiling",
         {{"enabled", p.vae_tiling.enabled},
          {"tile_h", p.vae_tiling.tile_h},
          {"tile_w", p.vae_tiling.tile_w},
          {"overlap", p.vae_tiling.overlap}}},
        {"frame_chunking",
         {{"enabled", p.frame_chunking.enabled},
          {"window", p.frame_chunking.window},
          {"overlap", p.frame_chunking.overlap}}},
        {"components", components},
        {"user_set", p.user_set.names()}}},
      {"reasons", reasons},
      {"ladder", ladder},
      {"estimate",
       {{"budget",
         {{"device_capacity", e.budget.device_capacity},
          {"device_reserve", e.budget.device_reserve},
          {"host_capacity", e.budget.host_capacity},
          {"host_reserve", e.budget.host_reserve},
          {"device_source", e.budget.device_source},
          {"host_source", e.budget.host_source}}},
        {"device_peak", e.device_peak},
        {"device_peak_stage", e.device_peak_stage},
        {"host_peak", e.host_peak},
        {"host_peak_stage", e.host_peak_stage},
        {"stages", stages}}},
      {"independence", {{"components", indep_components}, {"fallbacks", fallbacks}}},
      {"guidance", p.guidance},
  };
}

nlohmann::json inspect_json(const BundleManifest& m, const wan22::WanSpec& spec, bool verified) {
  const auto& d = spec.sampling;
  nlohmann::json doc = {{"bundle", m.root},
                        {"model_id", m.model_id},
                        {"task", m.task},
                        {"format_version", m.format_version},
                        {"weights", m.format_version >= 2 ? "safetensors" : "torchscript"},
                        {"attention", m.attention},
                        {"verified", verified},
                        {"components", nlohmann::json::array()}};
  for (const auto& c : m.components) {
    doc["components"].push_back({{"name", c.name},
                                 {"file", c.file},
                                 {"weights", c.weights},
                                 {"dtype", c.dtype},
                                 {"parameters", c.parameters},
                                 {"bytes", c.bytes},
                                 {"non_block_bytes", c.non_block_bytes},
                                 {"block_bytes", c.block_bytes},
                                 {"keep_fp32", c.keep_fp32},
                                 {"contract",
                                  {{"kind", c.contract.kind},
                                   {"methods", c.contract.methods},
                                   {"num_blocks", c.contract.num_blocks},
                                   {"inputs", c.contract.inputs}}},
                                 {"expert", c.expert}});
  }
  doc["sampling"] = {{"steps", d.steps},   {"shift", d.shift},   {"guide_scale", {d.guide_low, d.guide_high}},
                     {"frames", d.frames}, {"size", {d.width, d.height}}, {"fps", d.fps},
                     {"sampler", d.sampler}};
  if (d.boundary) doc["sampling"]["boundary"] = *d.boundary;
  return doc;
}

namespace {

nlohmann::json applied_plan_json(const RunContext& o, const OptimizationPlan& plan,
                                 const wan22::GenerateResult& result) {
  nlohmann::json fallbacks = nlohmann::json::array();
  for (const FallbackStep& f : result.fallbacks) {
    fallbacks.push_back({{"component", f.component}, {"from", f.from}, {"to", f.to},
                         {"error", f.error}});
  }
  return {{"device", plan.device},
          {"threads", at::get_num_threads()},
          {"dtype", dtype_name(plan.dtype)},
          {"offload", offload_name(plan.offload)},
          {"blocks_resident", plan.blocks_resident},
          {"prefetch", plan.prefetch},
          {"text_encoder", text_encoder_placement_name(plan.text_encoder)},
          {"rung", plan.rung},
          {"auto_optimize", o.auto_optimize},
          {"summary", result.plan_summary},
          {"components", components_json(plan)},
          {"vram_budget_bytes", o.vram_budget > 0 ? nlohmann::json(o.vram_budget) : nlohmann::json()},
          {"ledger_peak_bytes", result.ledger_peak_bytes},
          {"ledger_host_peak_bytes", result.ledger_host_peak_bytes},
          {"fallbacks", fallbacks}};
}

// The chunking part of the plan; null where a setting is off.
nlohmann::json chunking_json(const RunContext& o, const wan22::ResolvedRequest& r,
                             const wan22::GenerateResult& result) {
  const auto or_null = [](int value) {
    return value > 0 ? nlohmann::json(value) : nlohmann::json(nullptr);
  };
  return {
      {"chunk_frames", or_null(r.chunk_frames)},
      {"chunk_overlap", r.chunk_frames > 0 ? nlohmann::json(r.chunk_overlap) : nlohmann::json()},
      {"denoise_windows", result.denoise_windows},
      {"dit_calls", result.dit_calls},
      {"vae_tile", or_null(r.vae_tile)},
      {"vae_tiles", result.vae_tiles},
      {"blend", r.blend},
      {"vae_decode", o.streamed ? "causal, one latent frame per step, frames streamed to the "
                                  "writer"
                                : "causal, one latent frame per step, whole video kept"},
  };
}

}  // namespace

nlohmann::json host_allocator_json() {
  const HostAllocatorState s = host_allocator_state();
  const char* cuda_conf = std::getenv("PYTORCH_CUDA_ALLOC_CONF");
  return {{"allocator", s.allocator},
          {"policy", host_allocator_policy_name(s.policy)},
          {"tuned", s.tuned},
          {"source", s.source},
          {"cuda_alloc_conf", cuda_conf ? nlohmann::json(cuda_conf) : nlohmann::json(nullptr)}};
}

nlohmann::json loras_json(const wan22::Model& model) {
  const auto& files = model.loras().files();
  if (files.empty()) return nullptr;
  nlohmann::json given = nlohmann::json::array();
  for (const auto& [spec, file] : files) {
    given.push_back({{"path", spec.path},
                     {"strength", spec.strength},
                     {"experts", wan22::lora_experts_name(spec.experts)},
                     {"layouts", file->layouts},
                     {"rank", file->max_rank}});
  }
  nlohmann::json merges = nlohmann::json::array();
  for (const wan22::LoraMerge& m : model.lora_merges()) {
    std::vector<std::string> unmatched;
    for (const auto& keys : m.report.plan.unmatched_keys) {
      unmatched.insert(unmatched.end(), keys.begin(), keys.end());
    }
    merges.push_back({{"component", m.component},
                      {"tensors", m.report.tensors},
                      {"merged_bytes", m.report.merged_bytes},
                      {"seconds", m.report.seconds},
                      {"unmatched_keys", unmatched}});
  }
  return {{"files", given}, {"merges", merges}};
}

nlohmann::json run_report_json(const RunContext& o, const wan22::WanSpec& spec,
                               const OptimizationPlan& plan, const wan22::GenerateResult& result) {
  const auto& r = result.request;
  nlohmann::json times = nlohmann::json::object();
  nlohmann::json peaks = nlohmann::json::object();
  nlohmann::json retained = nlohmann::json::object();
  for (const auto& t : result.times) {
    times[t.stage] = t.seconds;
    peaks[t.stage] = t.peak_rss_bytes;
    retained[t.stage] = t.retained_bytes;
  }
  times["load"] = o.load_seconds;
  times["total"] = o.total_seconds;
  nlohmann::json applied = applied_plan_json(o, plan, result);
  applied["chunking"] = chunking_json(o, r, result);
  return {
      {"output", o.output},
      {"bundle", o.bundle},
      {"model_id", spec.model_id},
      {"task", spec.task},
      {"request",
       {{"prompt", r.prompt},
        {"negative_prompt", r.negative_prompt},
        {"image", o.image.empty() ? nlohmann::json(nullptr) : nlohmann::json(o.image)},
        {"width", r.width},
        {"height", r.height},
        {"frames", r.frames},
        {"steps", r.steps},
        {"seed", r.seed},
        {"guidance", {{"low_noise", r.guide_low}, {"high_noise", r.guide_high}}},
        {"shift", r.shift},
        {"sampler", r.sampler},
        {"preset", r.preset.empty() ? nlohmann::json(nullptr) : nlohmann::json(r.preset)},
        {"user_set", r.user_set}}},
      {"plan", applied},
      {"loras", o.loras},
      {"fps", result.fps},
      {"expert_trace", result.expert_trace},
      {"times_s", times},
      {"peak_rss_bytes", result.peak_rss_bytes},
      {"stage_peak_rss_bytes", peaks},
      {"stage_retained_bytes", retained},
      {"host_allocator", host_allocator_json()},
      {"parallel",
       {{"layout", result.parallel},
        {"backend", result.parallel_backend},
        {"comm_seconds", result.comm_seconds}}},
  };
}

}  // namespace wanrt::bindings
