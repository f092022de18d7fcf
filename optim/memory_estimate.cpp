#include "optim/memory_estimate.h"

#include <fmt/format.h>

#include <algorithm>

#include "runtime/error.h"

namespace wanrt {
namespace {

// The stages (indices) that use a component.
struct Uses {
  std::vector<int> stages;
  int first() const { return stages.empty() ? -1 : stages.front(); }
  int last() const { return stages.empty() ? -1 : stages.back(); }
  bool has(int i) const { return std::find(stages.begin(), stages.end(), i) != stages.end(); }
  bool contiguous() const { return stages.empty() || last() - first() + 1 == int(stages.size()); }
};

Uses uses_of(const std::vector<StageRequirement>& stages, const std::string& name) {
  Uses u;
  for (int i = 0; i < static_cast<int>(stages.size()); ++i) {
    if (stages[i].component == name) u.stages.push_back(i);
  }
  return u;
}

bool device_resident_kind(Residency r) {
  return r == Residency::kWholeRun || r == Residency::kFromFirstUse;
}

bool on_device(const ComponentPlan& cp, const Uses& u, int i) {
  if (cp.placement == Placement::kCpu) return false;
  switch (cp.residency) {
    case Residency::kWholeRun:
      return true;
    case Residency::kFromFirstUse:
      return u.first() >= 0 && i >= u.first();
    case Residency::kDuringUse:
    case Residency::kStreamed:
      return u.has(i);
  }
  return false;
}

bool streamed(const ComponentRequirement& c, const ComponentPlan& cp) {
  return cp.residency == Residency::kStreamed && c.staged() && cp.blocks_resident >= 0 &&
         cp.blocks_resident < c.num_blocks();
}

// Stage at which a device-resident component is loaded through host memory.
int load_stage(const ComponentPlan& cp, const Uses& u) {
  return cp.residency == Residency::kWholeRun ? 0 : u.first();
}

// Whether host RAM keeps a full copy of the component during stage i (loading transients
// are counted separately).
bool host_holds(const ComponentPlan& cp, const Uses& u, int i, HostResidency residency) {
  const bool all = residency == HostResidency::kAll;
  if (cp.placement == Placement::kCpu) return all || (i >= u.first() && i <= u.last());
  if (device_resident_kind(cp.residency)) return false;
  if (all) return true;
  if (cp.residency == Residency::kDuringUse && u.contiguous())
    return false;  // loaded, used, dropped
  return u.first() >= 0 && i >= u.first() && i <= u.last();
}

std::int64_t sum(const std::vector<MemoryItem>& items) {
  std::int64_t total = 0;
  for (const auto& m : items) total += m.bytes;
  return total;
}

std::int64_t sum_kind(const std::vector<MemoryItem>& items, MemoryItem::Kind kind) {
  std::int64_t total = 0;
  for (const auto& m : items) {
    if (m.kind == kind) total += m.bytes;
  }
  return total;
}

}  // namespace

std::int64_t StageEstimate::device_bytes(MemoryItem::Kind kind) const {
  return sum_kind(device, kind);
}

std::int64_t StageEstimate::host_bytes(MemoryItem::Kind kind) const { return sum_kind(host, kind); }

const StageEstimate& MemoryEstimate::stage(const std::string& name) const {
  for (const auto& s : stages) {
    if (s.name == name) return s;
  }
  throw Error(ErrorCategory::kInternal, fmt::format("estimate has no stage '{}'", name));
}

MemoryEstimate estimate_memory(const ModelRequirements& requirements, const Workload& workload,
                               const OptimizationPlan& plan, const Budget& budget) {
  if (!requirements.activations) {
    throw Error(
        ErrorCategory::kInternal,
        fmt::format("requirements of '{}' carry no activation model", requirements.model_id));
  }
  const auto stages = requirements.stages_for(workload);
  MemoryEstimate est;
  est.budget = budget;
  const bool gpu = plan.on_gpu();

  Dtype vae_dtype = Dtype::kFp32;
  for (const auto& c : requirements.components) {
    if (c.role == ComponentRole::kVae) vae_dtype = plan.component(c.name).compute;
  }

  for (int i = 0; i < static_cast<int>(stages.size()); ++i) {
    const StageRequirement& stage = stages[i];
    const ComponentPlan& runner = plan.component(stage.component);
    StageEstimate se;
    se.name = stage.name;
    se.component = stage.component;
    se.on_cpu = !gpu || runner.placement == Placement::kCpu;

    std::int64_t loading = 0;
    std::string loading_name;
    for (const auto& c : requirements.components) {
      const ComponentPlan& cp = plan.component(c.name);
      const Uses u = uses_of(stages, c.name);
      if (gpu && on_device(cp, u, i)) {
        const auto [half, fp32] = c.split_at(cp.storage);
        if (streamed(c, cp)) {
          const int k = cp.blocks_resident;
          const std::int64_t block = c.max_block_at(cp.storage);
          const std::int64_t resident = c.non_block_at(cp.storage) + k * block;
          const int in_flight = std::min(c.num_blocks() - k, 1 + std::max(0, cp.prefetch));
          se.device.push_back(
              make_memory_item(c.name + " weights", resident, MemoryItem::kWeights,
                   fmt::format("{} streamed: non-block {} + {} resident of {} blocks x {}",
                               dtype_name(cp.storage), format_gib(c.non_block_at(cp.storage)), k,
                               c.num_blocks(), format_gib(block))));
          se.device.push_back(make_memory_item(c.name + " streaming buffers", in_flight * block,
                                   MemoryItem::kWorkspace,
                                   fmt::format("{} block(s) in flight (running + prefetch {}) x {}",
                                               in_flight, cp.prefetch, format_gib(block))));
          // Split the resident part by dtype in the component's proportions.
          const std::int64_t total = half + fp32;
          const std::int64_t resident_fp32 =
              total > 0
                  ? static_cast<std::int64_t>(static_cast<long double>(resident) * fp32 / total)
                  : 0;
          se.device_fp32_weights += resident_fp32;
          se.device_half_weights += resident - resident_fp32;
        } else {
          se.device.push_back(
              make_memory_item(c.name + " weights", c.bytes_at(cp.storage), MemoryItem::kWeights,
                   fmt::format("{} {}: {} half + {} fp32", dtype_name(cp.storage),
                               residency_name(cp.residency), format_gib(half), format_gib(fp32))));
          se.device_half_weights += half;
          se.device_fp32_weights += fp32;
        }
      }
      if (c.lora_load_bytes > 0 && u.first() >= 0 && i == u.first()) {
        // Counted where the component is first used; with host residency "all" the merge runs
        // at model load, before this stage, so this errs high.
        se.host.push_back(make_memory_item(
            c.name + " LoRA merge", c.lora_load_bytes, MemoryItem::kWorkspace,
            "LoRA tensors read and one parameter's float32 work space while merging at load"));
      }
      // Host copies.
      // Weights used in place from a mapped file (format 2, not cast at load).
      const bool in_file = requirements.mapped_weights && cp.storage == c.stored;
      // Mapped pages a run never reads never become resident: the lookup-table rows its prompts
      // do not use, and without an image to encode the VAE's encoder.
      const std::int64_t unread = c.sparse_bytes + (workload.image ? 0 : c.encode_only_bytes);
      const std::string unread_why =
          !workload.image && c.encode_only_bytes > 0
              ? fmt::format(" (without the {} encoder: no image to encode)",
                            format_gib(c.encode_only_bytes))
              : "";
      if (plan.host_residency == HostResidency::kDisk && in_file) {
        // Used in place from the mapped file: pages come in while the residency policy holds
        // a unit and are dropped after; a streamed component holds its non-block weights and
        // the blocks resident or in flight. Nothing is read through the heap.
        if (u.first() >= 0 && i >= u.first() && i <= u.last()) {
          std::int64_t bytes = c.bytes_at(cp.storage) - unread;
          std::string why = "paged in from the weights file while in use" + unread_why;
          if (streamed(c, cp)) {
            const int k = cp.blocks_resident;
            const int in_flight = std::min(c.num_blocks() - k, 1 + std::max(0, cp.prefetch));
            const std::int64_t non_block = c.non_block_at(cp.storage) - c.sparse_bytes;
            bytes = non_block + (k + in_flight) * c.max_block_at(cp.storage);
            why = fmt::format("paged from the weights file: non-block {} + {} block(s) x {}",
                              format_gib(non_block), k + in_flight,
                              format_gib(c.max_block_at(cp.storage)));
          }
          if (c.sparse_bytes > 0) {
            why += fmt::format(" (without the {} token embedding: only the rows read are paged in)",
                               format_gib(c.sparse_bytes));
          }
          se.host.push_back(
              make_memory_item(c.name + " weights", bytes, MemoryItem::kWeights, why));
          if (c.lora_merged_parameters > 0) {
            // LoRA-merged tensors are heap copies: held while the component is, not paged. The
            // share of them in the units counted above is not counted twice.
            const std::int64_t merged = c.lora_merged_parameters * dtype_size(cp.storage);
            const std::int64_t all_bytes = c.bytes_at(cp.storage) - c.sparse_bytes;
            const std::int64_t extra =
                all_bytes > 0 ? static_cast<std::int64_t>(static_cast<long double>(merged) *
                                                          (all_bytes - bytes) / all_bytes)
                              : 0;
            se.host.push_back(make_memory_item(
                c.name + " LoRA-merged weights", extra, MemoryItem::kWeights,
                fmt::format("{} merged at load, held in RAM rather than paged", format_gib(merged))));
          }
        }
      } else if (host_holds(cp, u, i,
                            // A component "disk" cannot page (format 1, or cast at load)
                            // stays loaded like "all".
                            plan.host_residency == HostResidency::kDisk ? HostResidency::kAll
                                                                        : plan.host_residency)) {
        // Mapped weights used in place on the CPU: only the rows read of a lookup table are
        // paged in. (For a GPU the host copy is a pinned copy.)
        const bool mapped = in_file && (!gpu || cp.placement == Placement::kCpu);
        se.host.push_back(
            make_memory_item(c.name + " weights",
                 c.bytes_at(cp.storage) - (mapped ? unread : 0), MemoryItem::kWeights,
                 fmt::format("{} {} ({}{}){}", dtype_name(cp.storage),
                             mapped ? "mapped from the weights file" : "host copy",
                             cp.placement == Placement::kCpu ? "runs on the CPU"
                             : streamed(c, cp)               ? "pinned, streamed from"
                                                             : "offloaded",
                             plan.host_residency != HostResidency::kOnDemand ? ", kept for the whole run"
                                                                        : "",
                             mapped ? unread_why : "")));
      } else if (cp.placement == Placement::kDevice && gpu && u.first() >= 0 &&
                 i == (device_resident_kind(cp.residency) ? load_stage(cp, u) : u.first())) {
        // Loaded through host RAM, then moved to the device; one component at a time.
        if (c.bytes_at(cp.storage) > loading) {
          loading = c.bytes_at(cp.storage);
          loading_name = c.name;
        }
      }
    }
    if (loading > 0) {
      se.host.push_back(make_memory_item("loading " + loading_name, loading, MemoryItem::kWeights,
                             "read into host RAM, then moved to the device (largest component "
                             "loaded in this stage)"));
    }

    ActivationQuery query;
    query.workload = workload;
    query.compute = runner.compute;
    query.vae_dtype = vae_dtype;
    query.attention = plan.attention;
    query.frame_chunking = plan.frame_chunking;
    query.vae_tiling = plan.vae_tiling;
    auto acts = requirements.activations->stage_memory(stage, query);
    if (runner.storage != runner.compute && runner.compute == Dtype::kFp32) {
      const auto& c = requirements.component(stage.component);
      const std::int64_t unit =
          c.staged() ? c.max_block_at(Dtype::kFp32) : c.bytes_at(Dtype::kFp32);
      acts.push_back(make_memory_item("per-layer upcast to fp32", unit, MemoryItem::kWorkspace,
                          fmt::format("{} stored, fp32 compute: one block upcast at a time ({})",
                                      dtype_name(runner.storage), format_gib(unit))));
    }
    auto& target = se.on_cpu ? se.host : se.device;
    target.insert(target.end(), acts.begin(), acts.end());

    if (gpu) {
      se.device.push_back(make_memory_item("reserve", budget.device_reserve, MemoryItem::kReserve,
                               "vram_safety_margin_mb (CUDA context, fragmentation)"));
    }
    se.host.push_back(make_memory_item("process", kHostCodeBaseline, MemoryItem::kOther,
                           "LibTorch and code"));
    const bool vae_stage = stage.kind == RunStage::kDecode || stage.kind == RunStage::kImageEncode;
    se.host.push_back(make_memory_item(
        "allocator retention", vae_stage ? kHostVaeAllocatorRetention : kHostAllocatorRetention,
        MemoryItem::kOther,
        vae_stage ? "freed temporaries below 32 MiB the heap keeps (larger ones go back at once "
                    "while a VAE runs)"
                  : "freed temporaries the heap keeps until the stage's closing trim"));
    if (stage.kind == RunStage::kDecode) {
      se.host.push_back(make_memory_item("output video", requirements.activations->output_bytes(workload),
                             MemoryItem::kActivation, "decoded frames (fp32 and uint8)"));
    }
    se.host.push_back(make_memory_item("reserve", budget.host_reserve, MemoryItem::kReserve,
                           "kept for the OS and other processes"));
    se.device_total = sum(se.device);
    se.host_total = sum(se.host);
    if (se.device_total > est.device_peak) {
      est.device_peak = se.device_total;
      est.device_peak_stage = se.name;
    }
    if (se.host_total > est.host_peak) {
      est.host_peak = se.host_total;
      est.host_peak_stage = se.name;
    }
    est.stages.push_back(std::move(se));
  }
  return est;
}

}  // namespace wanrt
