#include "bindings/cli/lora_flags.h"

namespace wanrt::cli {

void LoraFlags::add_to(CLI::App* cmd) {
  cmd->add_option("--lora", all,
                  "LoRA merged into every DiT at load: FILE[:STRENGTH] (strength 1 by default; "
                  "repeat to stack)")
      ->take_all();
  cmd->add_option("--lora-high", high,
                  "LoRA for the high-noise expert only (A14B): FILE[:STRENGTH]; repeatable")
      ->take_all();
  cmd->add_option("--lora-low", low,
                  "LoRA for the low-noise expert only (A14B): FILE[:STRENGTH]; repeatable")
      ->take_all();
  cmd->add_flag("--lora-allow-partial", partial,
                "Apply the LoRA keys that match the model and list the others, instead of "
                "refusing the file");
}

std::vector<wan22::LoraSpec> LoraFlags::specs() const {
  std::vector<wan22::LoraSpec> out;
  for (const auto& s : all) out.push_back(wan22::parse_lora_spec(s, wan22::LoraExperts::kAll));
  for (const auto& s : high) out.push_back(wan22::parse_lora_spec(s, wan22::LoraExperts::kHigh));
  for (const auto& s : low) out.push_back(wan22::parse_lora_spec(s, wan22::LoraExperts::kLow));
  return out;
}

}  // namespace wanrt::cli
