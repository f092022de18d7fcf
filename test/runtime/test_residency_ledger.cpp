#include "support/catch.h"
#include <functional>
#include <string>
#include <vector>

#include "support/error_category.h"
#include "runtime/error.h"
#include "runtime/residency_ledger.h"

using wanrt::ErrorCategory;
using wanrt::LedgerEvent;
using wanrt::ResidencyLedger;

namespace {

// An event as "+dit/shell 100 =100" (acquire) or "-dit/shell 100 =0" (release).
std::string show(const LedgerEvent& e) {
  return std::string(e.kind == LedgerEvent::kAcquire ? "+" : "-") + e.component + "/" + e.unit +
         " " + std::to_string(e.bytes) + " =" + std::to_string(e.total);
}

std::vector<std::string> shown(const ResidencyLedger& ledger) {
  std::vector<std::string> out;
  for (const auto& e : ledger.events()) out.push_back(show(e));
  return out;
}

using wanrt_test::category_of;

}  // namespace

TEST_CASE("ledger sums held bytes per component and tracks the peak", "[runtime]") {
  ResidencyLedger ledger;
  CHECK(ledger.budget() == 0);
  CHECK(ledger.current() == 0);
  CHECK(ledger.peak() == 0);

  ledger.acquire("dit", "shell", 100);
  ledger.acquire("dit", "block 0", 30);
  ledger.acquire("vae", "all", 7);
  CHECK(ledger.current() == 137);
  CHECK(ledger.held_by("dit") == 130);
  CHECK(ledger.held_by("vae") == 7);
  CHECK(ledger.held_by("text_encoder") == 0);
  CHECK(ledger.holds("dit", "block 0"));
  CHECK_FALSE(ledger.holds("dit", "block 1"));
  CHECK_FALSE(ledger.holds("vae", "block 0"));  // same unit name, other component

  ledger.release("dit", "block 0");
  CHECK(ledger.current() == 107);
  CHECK(ledger.peak() == 137);  // the peak stays
  CHECK_FALSE(ledger.holds("dit", "block 0"));
  ledger.acquire("dit", "block 1", 20);
  CHECK(ledger.current() == 127);
  CHECK(ledger.peak() == 137);

  ledger.reset_peak();
  CHECK(ledger.peak() == 127);
  ledger.release("vae", "all");
  CHECK(ledger.peak() == 127);
  CHECK(ledger.current() == 120);

  const std::vector<std::string> expected = {"+dit/shell 100 =100",  "+dit/block 0 30 =130",
                                             "+vae/all 7 =137",      "-dit/block 0 30 =107",
                                             "+dit/block 1 20 =127", "-vae/all 7 =120"};
  CHECK(shown(ledger) == expected);
  ledger.clear_events();
  CHECK(ledger.events().empty());
  CHECK(ledger.current() == 120);  // clearing events keeps what is held
  ledger.release("dit", "shell");
  CHECK(shown(ledger) == std::vector<std::string>{"-dit/shell 100 =20"});
}

TEST_CASE("ledger refuses what exceeds the budget and records nothing then", "[runtime]") {
  ResidencyLedger ledger(100);
  CHECK(ledger.budget() == 100);
  CHECK(ledger.fits(100));
  CHECK_FALSE(ledger.fits(101));
  ledger.acquire("dit", "shell", 60);
  CHECK(ledger.fits(40));
  CHECK_FALSE(ledger.fits(41));

  try {
    ledger.acquire("dit", "block 0", 41);
    FAIL("expected an out-of-memory error");
  } catch (const wanrt::Error& e) {
    CHECK(e.category() == ErrorCategory::kOutOfMemory);
    CHECK_THAT(e.what(), Catch::Contains("dit") && Catch::Contains("block 0"));
    CHECK_FALSE(e.hint().empty());
  }
  CHECK_FALSE(ledger.holds("dit", "block 0"));
  CHECK(ledger.current() == 60);
  CHECK(ledger.peak() == 60);
  CHECK(ledger.events().size() == 1);

  ledger.acquire("dit", "block 0", 40);  // exactly the budget fits
  CHECK(ledger.current() == 100);
  CHECK(ledger.peak() == 100);

  ledger.set_budget(0);  // no limit
  CHECK(ledger.fits(std::int64_t{1} << 50));
  ledger.acquire("dit", "block 1", 1000);
  CHECK(ledger.current() == 1100);
  ledger.set_budget(50);  // below what is held: only new acquisitions are refused
  CHECK(category_of([&] { ledger.acquire("vae", "all", 1); }) == ErrorCategory::kOutOfMemory);
  ledger.release("dit", "block 1");
  CHECK(ledger.current() == 100);
}

TEST_CASE("ledger reports double acquires and unknown releases as internal errors", "[runtime]") {
  ResidencyLedger ledger;
  ledger.acquire("dit", "shell", 10);
  CHECK(category_of([&] { ledger.acquire("dit", "shell", 10); }) == ErrorCategory::kInternal);
  CHECK(ledger.current() == 10);
  CHECK(category_of([&] { ledger.release("dit", "block 0"); }) == ErrorCategory::kInternal);
  CHECK(category_of([&] { ledger.release("vae", "shell"); }) == ErrorCategory::kInternal);
  ledger.release("dit", "shell");
  CHECK(category_of([&] { ledger.release("dit", "shell"); }) == ErrorCategory::kInternal);
  CHECK(ledger.current() == 0);
  CHECK(shown(ledger) == std::vector<std::string>{"+dit/shell 10 =10", "-dit/shell 10 =0"});
}
