// The one ladder table (optim/ladder.h): the orders the planner and the runtime walk, as
// docs/optimization.md documents them, and the typed set of user-fixed settings.
#include "support/catch.h"

#include <set>
#include <string>
#include <vector>

#include "optim/ladder.h"

using wanrt::Setting;
using wanrt::SettingSet;

namespace {

std::vector<std::string> names(const std::vector<const wanrt::Rung*>& rungs) {
  std::vector<std::string> out;
  for (const auto* r : rungs) out.emplace_back(r->name);
  return out;
}

}  // namespace

TEST_CASE("the GPU and CPU ladders walk the documented orders", "[optim][ladder]") {
  CHECK(names(wanrt::ladder_walk(true)) ==
        std::vector<std::string>{"resident", "text encoder off-device after use",
                                 "model offload", "block streaming", "VAE tiling",
                                 "full streaming", "frame chunking"});
  CHECK(names(wanrt::ladder_walk(true, /*aggressive=*/true)) ==
        std::vector<std::string>{"resident", "text encoder off-device after use",
                                 "model offload", "block streaming", "VAE tiling",
                                 "frame chunking", "full streaming"});
  CHECK(names(wanrt::ladder_walk(false)) ==
        std::vector<std::string>{"CPU: all weights in RAM", "CPU: weights loaded on first use",
                                 "CPU: weights paged from disk, block by block",
                                 "CPU: bf16 weights", "VAE tiling", "frame chunking"});
}

TEST_CASE("the runtime's fallback takes only the rungs that move weights", "[optim][ladder]") {
  std::vector<std::string> at_run_time;
  std::set<std::string> seen;
  for (const auto& r : wanrt::ladder()) {
    CHECK(seen.insert(r.name).second);  // names are unique
    CHECK((r.gpu || r.cpu));            // every rung is on a ladder
    CHECK_FALSE(r.decides.empty());     // and decides something a user can fix
    if (r.at_run_time) at_run_time.emplace_back(r.name);
    CHECK(&wanrt::rung_of(r.id) == &r);
  }
  CHECK(at_run_time == std::vector<std::string>{"text encoder off-device after use",
                                                "model offload", "block streaming",
                                                "full streaming"});
}

TEST_CASE("SettingSet: the set fields of PlanSettings, by name", "[optim][ladder]") {
  wanrt::PlanSettings s;
  CHECK(SettingSet::of(s).empty());
  s.offload = wanrt::OffloadPolicy::kModel;
  s.vae_tile = 0;  // set, even to "off"
  s.prefetch = 2;
  const SettingSet set = SettingSet::of(s);
  CHECK(set.size() == 3);
  CHECK(set.contains(Setting::kOffload));
  CHECK(set.contains(Setting::kVaeTile));
  CHECK_FALSE(set.contains(Setting::kDtype));
  CHECK(set.names() == std::vector<std::string>{"offload", "prefetch", "vae_tile"});
  CHECK(s.names() == set.names());
  CHECK(set.intersects(SettingSet{Setting::kPrefetch, Setting::kDevice}));
  CHECK_FALSE(set.intersects(SettingSet{Setting::kDevice}));
  CHECK(SettingSet{Setting::kDevice} == SettingSet{Setting::kDevice});
}
