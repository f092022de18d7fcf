// Flow UniPC / Euler: Python parity (fixture.wan22_reference), published Wan 2.2 timesteps,
// closed-form flows, API errors.
#include <ATen/ATen.h>

#include <algorithm>
#include "support/catch.h"
#include <torch/version.h>
#include <cmath>
#include <string>
#include <vector>

#include "models/wan22/scheduler.h"
#include "models/wan22_reference.h"
#include "runtime/error.h"

namespace w = wanrt::wan22;

TEST_CASE("schedulers match Python: schedule bit for bit, steps within float32 rounding",
          "[models]") {
  WANRT_REQUIRE_WAN22_REFERENCE();
  // The reference comes from Python on the PyTorch this build links (measured: every step bit
  // for bit on 2.11). Across versions float32 kernels round UniPC's multistep differences
  // differently (LibTorch 2.11 against a 1.13 reference: up to 8.3e-6), so the bound is float32
  // rounding of a few operations, not equality. The schedule (timesteps, sigmas) is bit for bit.
  const double step_bound = 1e-6;
  const auto ref = wanrt_test::load_wan22_reference("schedulers.pt");
  const auto cases = wanrt_test::reference_strings(ref, "cases");
  REQUIRE(cases.size() >= 20);
  double worst = 0.0;
  int inexact = 0;
  int total = 0;
  for (const std::string& key : cases) {
    INFO("case " << key);
    const std::string name = key.substr(0, key.find('/'));
    const int steps = static_cast<int>(ref.at(key + "/steps").toInt());
    const double shift = ref.at(key + "/shift").toDouble();
    auto sched = w::make_scheduler(name);
    sched->set_timesteps(steps, shift);

    const at::Tensor ts = ref.at(key + "/timesteps").toTensor();
    const at::Tensor sg = ref.at(key + "/sigmas").toTensor();
    REQUIRE(ts.scalar_type() == at::kLong);
    REQUIRE(sg.scalar_type() == at::kFloat);
    const std::vector<double> want_ts(ts.data_ptr<std::int64_t>(),
                                      ts.data_ptr<std::int64_t>() + ts.numel());
    const std::vector<float> want_sg(sg.data_ptr<float>(), sg.data_ptr<float>() + sg.numel());
    CHECK(sched->timesteps() == want_ts);
    CHECK(sched->sigmas() == want_sg);  // float ==: bit for bit (no NaNs here)

    const at::Tensor samples = ref.at(key + "/samples").toTensor();
    const at::Tensor velocities = ref.at(key + "/model_outputs").toTensor();
    const at::Tensor outputs = ref.at(key + "/outputs").toTensor();
    REQUIRE(samples.size(0) == steps);
    for (int i = 0; i < steps; ++i) {
      const at::Tensor got = sched->step(velocities[i], i, samples[i]);
      const at::Tensor want = outputs[i];
      REQUIRE(got.scalar_type() == want.scalar_type());
      // Relative to the output's magnitude: max |got - want| / max |want|.
      const double err = (got.to(at::kDouble) - want.to(at::kDouble)).abs().max().item<double>() /
                         std::max(want.to(at::kDouble).abs().max().item<double>(), 1e-30);
      worst = std::max(worst, err);
      inexact += at::equal(got, want) ? 0 : 1;
      ++total;
      INFO("step " << i << ": relative error " << err);
      CHECK(err <= step_bound);
    }
  }
  WARN("scheduler parity: " << total << " steps, " << inexact
                            << " not bit-identical, max relative error " << worst);
}

TEST_CASE("schedule: published Wan 2.2 timesteps and expert split", "[models]") {
  // docs/wan22.md section 4: T2V-A14B, 40 steps, shift 12, boundary 875.
  for (const char* name : {"unipc", "euler"}) {
    auto s = w::make_scheduler(name);
    s->set_timesteps(40, 12.0);
    const auto& t = s->timesteps();
    REQUIRE(t.size() == 40);
    CHECK(std::vector<double>(t.begin(), t.begin() + 5) ==
          std::vector<double>{999, 997, 995, 993, 990});
    CHECK(std::vector<double>(t.end() - 5, t.end()) ==
          std::vector<double>{631, 571, 492, 386, 235});
    CHECK(std::count_if(t.begin(), t.end(), [](double v) { return v >= 875; }) == 26);
    const auto& sg = s->sigmas();
    REQUIRE(sg.size() == 41);
    CHECK(sg.back() == 0.0f);
    for (std::size_t i = 0; i + 1 < sg.size(); ++i) CHECK(sg[i + 1] < sg[i]);
    CHECK(sg[0] == Approx(12 * 0.999 / (1 + 11 * 0.999)).epsilon(1e-6));
    // The integer timesteps truncate the float64 sigmas; the float32 copies stay within 1.
    for (std::size_t i = 0; i < t.size(); ++i) {
      CHECK(std::abs(static_cast<double>(sg[i]) * 1000 - static_cast<double>(t[i])) < 1.0);
    }
  }
  // I2V-A14B: 40 steps, shift 5, boundary 900 -> 15 high-noise steps.
  auto s = w::make_scheduler("unipc");
  s->set_timesteps(40, 5.0);
  const auto& t = s->timesteps();
  CHECK(std::count_if(t.begin(), t.end(), [](double v) { return v >= 900; }) == 15);
  // shift 1, 1 step: sigma_max = float32(0.999) -> timestep 999.
  s->set_timesteps(1, 1.0);
  CHECK(s->timesteps() == std::vector<double>{999});
  CHECK(s->sigmas() == std::vector<float>{0.999f, 0.0f});
}

TEST_CASE("lightning: the distilled schedule's timesteps are the formula's, unrounded",
          "[models]") {
  // docs/lora.md: t = linspace(1000, 0, steps + 1), s = t / 1000, s' = shift s / (1 + (shift -
  // 1) s), model timestep s' * 1000, all in float32. At 4 steps and shift 5 the exact values
  // are 1000, 937.5, 2500/3 and 625; float32 holds all but 2500/3 exactly.
  auto s = w::make_scheduler("lightning");
  s->set_timesteps(4, 5.0);
  const auto& t = s->timesteps();
  REQUIRE(t.size() == 4);
  CHECK(t[0] == 1000.0);
  CHECK(t[1] == 937.5);
  CHECK(t[2] == static_cast<double>(static_cast<float>(2.5f / 3.0f) * 1000.0f));
  CHECK(std::abs(t[2] - 2500.0 / 3.0) < 1e-4);
  CHECK(t[3] == 625.0);
  CHECK(s->sigmas() == std::vector<float>{1.0f, 0.9375f, 2.5f / 3.0f, 0.625f, 0.0f});
  // Every steps/shift: within float32 rounding of the float64 formula, descending, starting at
  // the pure-noise end (sigma 1) and ending at 0.
  for (int steps : {1, 2, 4, 6, 8, 50}) {
    for (double shift : {1.0, 3.0, 5.0, 8.0, 12.0}) {
      INFO("steps " << steps << " shift " << shift);
      s->set_timesteps(steps, shift);
      const auto& ts = s->timesteps();
      const auto& sg = s->sigmas();
      REQUIRE(ts.size() == static_cast<std::size_t>(steps));
      REQUIRE(sg.size() == static_cast<std::size_t>(steps) + 1);
      CHECK(sg.front() == 1.0f);
      CHECK(sg.back() == 0.0f);
      for (int i = 0; i < steps; ++i) {
        const double x = 1.0 - static_cast<double>(i) / steps;
        const double want = shift * x / (1.0 + (shift - 1.0) * x);
        CHECK(std::abs(static_cast<double>(sg[i]) - want) < 4e-7);
        CHECK(std::abs(ts[i] - 1000.0 * want) < 2e-4);
        CHECK(sg[i + 1] < sg[i]);
      }
    }
  }
}

TEST_CASE("a straight flow is integrated exactly by every sampler", "[models]") {
  at::manual_seed(0);
  const at::Tensor x0 = at::randn({3, 2, 4, 4});
  const at::Tensor noise = at::randn({3, 2, 4, 4});
  for (const char* name : {"euler", "unipc", "lightning"}) {
    INFO(name);
    auto s = w::make_scheduler(name);
    s->set_timesteps(12, 5.0);
    const float sig0 = s->sigmas()[0];
    at::Tensor x = (1 - sig0) * x0 + sig0 * noise;
    for (int i = 0; i < 12; ++i) x = s->step(noise - x0, i, x);
    CHECK((x - x0).abs().max().item<double>() < 1e-6);
    CHECK(x.scalar_type() == at::kFloat);
  }
}

TEST_CASE("the first UniPC step is DDIM, Euler is x + dt v", "[models]") {
  at::manual_seed(4);
  const at::Tensor x = at::randn({4, 6}, at::kDouble);
  const at::Tensor v = at::randn({4, 6}, at::kDouble);
  auto u = w::make_scheduler("unipc");
  auto e = w::make_scheduler("euler");
  u->set_timesteps(10, 3.0);
  e->set_timesteps(10, 3.0);
  const double s0 = u->sigmas()[0];
  const double s1 = u->sigmas()[1];
  const at::Tensor x0 = x - s0 * v;
  const at::Tensor ddim = (1 - s1) * x0 + s1 * (x - (1 - s0) * x0) / s0;
  const at::Tensor euler = x + (s1 - s0) * v;
  CHECK((u->step(v, 0, x) - ddim).abs().max().item<double>() < 1e-6);
  CHECK((e->step(v, 0, x) - euler).abs().max().item<double>() < 1e-12);
}

TEST_CASE("UniPC state restarts at index 0, order and arguments are enforced", "[models]") {
  auto s = w::make_scheduler("unipc");
  const at::Tensor x = at::ones({3});
  CHECK_THROWS_AS(s->step(at::zeros({3}), 0, x), wanrt::Error);  // no set_timesteps yet
  s->set_timesteps(5, 5.0);
  try {
    s->step(at::zeros({3}), 1, x);
    FAIL("expected an error");
  } catch (const wanrt::Error& err) {
    CHECK(err.category() == wanrt::ErrorCategory::kInternal);
    CHECK_THAT(err.what(), Catch::Contains("out of order"));
  }
  auto run = [&] {
    at::Tensor y = x.clone();
    for (int i = 0; i < 5; ++i) y = s->step(at::sin(y) + i, i, y);
    return y;
  };
  CHECK(at::equal(run(), run()));
  CHECK_THROWS_AS(s->step(at::zeros({3}), 5, x), wanrt::Error);

  for (auto [steps, shift] : {std::pair<int, double>{0, 5.0}, {10, 0.0}, {10, -1.0}}) {
    try {
      s->set_timesteps(steps, shift);
      FAIL("expected an error");
    } catch (const wanrt::Error& err) {
      CHECK(err.category() == wanrt::ErrorCategory::kUsage);
    }
  }
  try {
    w::make_scheduler("dpm++");
    FAIL("expected an error");
  } catch (const wanrt::Error& err) {
    CHECK(err.category() == wanrt::ErrorCategory::kUsage);
    CHECK_THAT(err.what(), Catch::Contains("dpm++"));
    CHECK_THAT(err.hint(), Catch::Contains("unipc") && Catch::Contains("euler") &&
                               Catch::Contains("lightning"));
  }
}
