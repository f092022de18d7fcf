#include "optim/independence.h"

#include <fmt/format.h>

namespace wanrt {
namespace {

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& s : items) out += (out.empty() ? "" : ", ") + s;
  return out;
}

}  // namespace

IndependenceReport analyze_independence(const ModelRequirements& req, const Budget* budget) {
  IndependenceReport report;
  std::int64_t te_bytes = 0, vae_bytes = 0;
  std::vector<const ComponentRequirement*> denoisers;
  std::string te_name, vae_name;
  for (const auto& c : req.components) {
    ComponentIndependence ci;
    ci.component = c.name;
    ci.role = c.role;
    if (c.can_run_on_cpu) ci.devices.push_back("cpu");
    if (c.can_run_on_device) ci.devices.push_back("cuda");
    ci.needs = c.needs;
    ci.bytes = c.stored_bytes;
    ci.blocks = c.num_blocks();
    if (budget) {
      ci.fits_device_alone = budget->device_capacity > 0 &&
                             c.stored_bytes <= budget->device_capacity - budget->device_reserve;
      ci.fits_host_alone =
          c.stored_bytes + kHostProcessBaseline <= budget->host_capacity - budget->host_reserve;
    }
    ci.summary = fmt::format(
        "{} ({}) runs alone on {} given {}{}", c.name, role_name(c.role), join(ci.devices),
        ci.needs.empty() ? "nothing" : join(ci.needs),
        c.staged() ? fmt::format("; {} streamable blocks", c.num_blocks()) : "; moves as a whole");
    report.components.push_back(ci);
    switch (c.role) {
      case ComponentRole::kTextEncoder:
        te_bytes = c.stored_bytes;
        te_name = c.name;
        break;
      case ComponentRole::kVae:
        vae_bytes = c.stored_bytes;
        vae_name = c.name;
        break;
      case ComponentRole::kDenoiser:
        denoisers.push_back(&c);
        break;
      case ComponentRole::kOther:
        break;
    }
  }

  const auto te = te_name.empty() ? nullptr : &req.component(te_name);
  const auto vae = vae_name.empty() ? nullptr : &req.component(vae_name);
  FallbackConfiguration f;
  f.name = "text encoder on the CPU";
  f.applicable = te && te->can_run_on_cpu;
  f.description = fmt::format(
      "the prompts are encoded on the CPU and only the embeddings move to the device: {} less "
      "on the device, slow (umT5-XXL: minutes)",
      format_gib(te_bytes));
  report.fallbacks.push_back(f);

  f.name = "cached text embeddings";
  f.applicable = te && !denoisers.empty();
  f.description = fmt::format(
      "the denoiser needs only the context embeddings: encode a prompt once, reuse them for "
      "every seed; later runs never load the text encoder ({})",
      format_gib(te_bytes));
  report.fallbacks.push_back(f);

  f.name = "VAE on the CPU";
  f.applicable = vae && vae->can_run_on_cpu;
  f.description = fmt::format(
      "decode the latents on the CPU: {} of weights plus the decode cache move to host RAM",
      format_gib(vae_bytes));
  report.fallbacks.push_back(f);

  f.name = "decode later";
  f.applicable = vae != nullptr;
  f.description =
      "the VAE needs only the final latents: save them after sampling and decode in "
      "a separate run (or on another machine); a decode failure no longer loses the "
      "sampling";
  report.fallbacks.push_back(f);

  if (denoisers.size() > 1) {
    f.name = "one expert at a time";
    f.applicable = true;
    f.description = fmt::format(
        "the {} denoisers run in separate step ranges: only one ({}) needs to be in memory; the "
        "other loads at the boundary",
        denoisers.size(), format_gib(denoisers.front()->stored_bytes));
    report.fallbacks.push_back(f);
  }
  for (const auto* d : denoisers) {
    if (!d->staged()) continue;
    f.name = "block streaming of " + d->name;
    f.applicable = true;
    f.description = fmt::format(
        "{} blocks of {} stream through the device; its minimum device footprint is the "
        "non-block part {} plus one block",
        d->num_blocks(), format_gib(d->max_block_at(d->stored)),
        format_gib(d->non_block_at(d->stored)));
    report.fallbacks.push_back(f);
  }
  return report;
}

}  // namespace wanrt
