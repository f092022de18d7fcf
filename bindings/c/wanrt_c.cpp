// The C API (bindings/c/include/wanrt/wanrt.h) over the embedding engine: every entry point
// converts its arguments, runs inside guard(), and reports failures as status codes plus the
// calling thread's last error.
#include "wanrt/wanrt.h"

#include <fmt/format.h>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <new>
#include <stdexcept>
#include <string>

#include "bindings/common/engine.h"
#include "bindings/common/plan_settings_text.h"
#include "runtime/error.h"
#include "runtime/host_allocator.h"
#include "runtime/version.h"

struct wanrt_model {
  explicit wanrt_model(wanrt::bindings::Engine e) : engine(std::move(e)) {}
  wanrt::bindings::Engine engine;
};

struct wanrt_cancel {
  std::atomic<bool> raised{false};
};

namespace {

using wanrt::Error;
using wanrt::ErrorCategory;

thread_local std::string t_message;
thread_local std::string t_hint;

wanrt_status status_of(ErrorCategory category) {
  switch (category) {
    case ErrorCategory::kUsage: return WANRT_ERROR_USAGE;
    case ErrorCategory::kBundle: return WANRT_ERROR_BUNDLE;
    case ErrorCategory::kResources: return WANRT_ERROR_RESOURCES;
    case ErrorCategory::kOutOfMemory: return WANRT_ERROR_OUT_OF_MEMORY;
    case ErrorCategory::kCancelled: return WANRT_ERROR_CANCELLED;
    case ErrorCategory::kInternal: return WANRT_ERROR_INTERNAL;
  }
  return WANRT_ERROR_INTERNAL;
}

wanrt_status fail(wanrt_status status, std::string message, std::string hint) {
  t_message = std::move(message);
  t_hint = std::move(hint);
  return status;
}

// Runs `fn`; any exception becomes a status and the thread's last error.
template <class F>
wanrt_status guard(F&& fn) noexcept {
  try {
    t_message.clear();
    t_hint.clear();
    fn();
    return WANRT_OK;
  } catch (const Error& e) {
    return fail(status_of(e.category()), e.what(), e.hint());
  } catch (const std::exception& e) {
    if (wanrt::is_out_of_memory(e)) {
      return fail(WANRT_ERROR_OUT_OF_MEMORY, wanrt::first_line(e.what()),
                  "offload more, lower the precision, the size or the frame count");
    }
    return fail(WANRT_ERROR_INTERNAL, wanrt::first_line(e.what()),
                "an unexpected error inside wanrt; please report it");
  } catch (...) {
    return fail(WANRT_ERROR_INTERNAL, "unknown exception inside wanrt", "please report it");
  }
}

void require(const void* pointer, const char* what) {
  if (pointer == nullptr) {
    throw Error(ErrorCategory::kUsage, fmt::format("{} is NULL", what), "pass a valid pointer");
  }
}

char* copy_out(const std::string& text) {
  char* out = static_cast<char*>(std::malloc(text.size() + 1));
  if (out == nullptr) throw std::bad_alloc();
  std::memcpy(out, text.c_str(), text.size() + 1);
  return out;
}

std::string text_or_empty(const char* text) { return text ? std::string(text) : std::string(); }

wanrt::wan22::GenerateRequest to_request(const wanrt_request* r) {
  require(r, "request");
  if (r->prompt == nullptr) {
    throw Error(ErrorCategory::kUsage, "request.prompt is NULL", "say what the video shows");
  }
  wanrt::wan22::GenerateRequest out;
  out.prompt = r->prompt;
  if (r->negative_prompt && *r->negative_prompt) out.negative_prompt = r->negative_prompt;
  if (r->width > 0) out.width = r->width;
  if (r->height > 0) out.height = r->height;
  if (r->frames != 0) out.frames = r->frames;
  if (r->steps != 0) out.steps = r->steps;
  out.seed = r->seed;
  if (r->guidance > 0) out.guidance = r->guidance;
  if (r->shift > 0) out.shift = r->shift;
  if (r->sampler) out.sampler = r->sampler;
  if (r->preset) out.preset = r->preset;
  if (r->image_rgb) {
    if (r->image_width <= 0 || r->image_height <= 0) {
      throw Error(ErrorCategory::kUsage,
                  fmt::format("request image of {}x{} pixels", r->image_width, r->image_height),
                  "set image_width and image_height to the image's size");
    }
    out.image = at::from_blob(const_cast<uint8_t*>(r->image_rgb),
                              {r->image_height, r->image_width, 3}, at::kByte)
                    .clone();
  }
  return out;
}

}  // namespace

extern "C" {

const char* wanrt_version(void) { return wanrt::version(); }

int wanrt_abi_version(void) { return WANRT_ABI_VERSION; }

wanrt_status wanrt_set_host_allocator(const char* policy) {
  return guard([&] {
    require(policy, "policy");
    const auto wanted = wanrt::parse_host_allocator_policy(policy);
    const auto state = wanrt::configure_host_allocator(wanted, true);
    if (state.policy != wanted) {
      throw wanrt::Error(wanrt::ErrorCategory::kUsage,
                         fmt::format("the host allocator is already set up as '{}' ({})",
                                     wanrt::host_allocator_policy_name(state.policy), state.source),
                         "call wanrt_set_host_allocator() before the first wanrt_open()");
    }
  });
}

const char* wanrt_status_name(wanrt_status status) {
  switch (status) {
    case WANRT_OK: return "ok";
    case WANRT_ERROR_USAGE: return "usage";
    case WANRT_ERROR_BUNDLE: return "bundle";
    case WANRT_ERROR_RESOURCES: return "resources";
    case WANRT_ERROR_OUT_OF_MEMORY: return "out-of-memory";
    case WANRT_ERROR_INTERNAL: return "internal";
    case WANRT_ERROR_CANCELLED: return "cancelled";
  }
  return "unknown";
}

const char* wanrt_last_error(void) { return t_message.c_str(); }

const char* wanrt_last_error_hint(void) { return t_hint.c_str(); }

void wanrt_free(void* pointer) { std::free(pointer); }

void wanrt_open_options_init(wanrt_open_options* options) {
  if (options == nullptr) return;
  *options = wanrt_open_options{};
  options->verify = 1;
  options->fallback = 1;
}

wanrt_status wanrt_open(const char* bundle_dir, const wanrt_open_options* options,
                        wanrt_model** model) {
  return guard([&] {
    require(bundle_dir, "bundle_dir");
    require(model, "model");
    *model = nullptr;
    wanrt_open_options o;
    wanrt_open_options_init(&o);
    if (options) o = *options;
    wanrt::bindings::PlanSettingsText text;
    text.device = text_or_empty(o.device);
    text.dtype = text_or_empty(o.dtype);
    text.offload = text_or_empty(o.offload);
    text.host_residency = text_or_empty(o.host_residency);
    wanrt::bindings::EngineOptions engine;
    engine.verify = o.verify != 0;
    engine.threads = o.threads;
    engine.settings = wanrt::bindings::parse_plan_settings(text, "");
    engine.auto_optimize = o.auto_optimize != 0;
    if (o.vram_budget < 0) {
      throw Error(ErrorCategory::kUsage, fmt::format("vram_budget {} is negative", o.vram_budget),
                  "pass 0 for no budget");
    }
    engine.vram_budget = o.vram_budget;
    engine.fallback = o.fallback != 0;
    if (o.lora_count < 0 || (o.lora_count > 0 && o.loras == nullptr)) {
      throw Error(ErrorCategory::kUsage,
                  fmt::format("lora_count {} with loras {}", o.lora_count,
                              o.loras ? "set" : "NULL"),
                  "point loras at lora_count wanrt_lora entries");
    }
    for (int i = 0; i < o.lora_count; ++i) {
      const wanrt_lora& l = o.loras[i];
      require(l.path, "loras[i].path");
      const std::string experts = text_or_empty(l.experts);
      wanrt::wan22::LoraSpec spec;
      spec.path = l.path;
      spec.strength = l.strength;
      if (experts == "high") {
        spec.experts = wanrt::wan22::LoraExperts::kHigh;
      } else if (experts == "low") {
        spec.experts = wanrt::wan22::LoraExperts::kLow;
      } else if (!experts.empty() && experts != "all") {
        throw Error(ErrorCategory::kUsage, fmt::format("loras[{}].experts '{}'", i, experts),
                    "use NULL, \"all\", \"high\" or \"low\"");
      }
      if (!std::isfinite(spec.strength)) {
        throw Error(ErrorCategory::kUsage, fmt::format("loras[{}].strength is not finite", i),
                    "pass a number such as 1.0");
      }
      engine.loras.push_back(spec);
    }
    engine.lora_allow_partial = o.lora_allow_partial != 0;
    *model = new wanrt_model(wanrt::bindings::Engine(bundle_dir, engine));
  });
}

void wanrt_close(wanrt_model* model) { delete model; }

wanrt_status wanrt_inspect(const wanrt_model* model, char** json) {
  return guard([&] {
    require(model, "model");
    require(json, "json");
    *json = copy_out(model->engine.inspect().dump(2));
  });
}

void wanrt_request_init(wanrt_request* request) {
  if (request != nullptr) *request = wanrt_request{};
}

wanrt_status wanrt_plan(const wanrt_model* model, const wanrt_request* request, char** json) {
  return guard([&] {
    require(model, "model");
    require(json, "json");
    *json = copy_out(model->engine.plan(to_request(request)).dump(2));
  });
}

wanrt_cancel* wanrt_cancel_create(void) { return new (std::nothrow) wanrt_cancel(); }

void wanrt_cancel_request(wanrt_cancel* cancel) {
  if (cancel) cancel->raised.store(true);
}

void wanrt_cancel_reset(wanrt_cancel* cancel) {
  if (cancel) cancel->raised.store(false);
}

void wanrt_cancel_free(wanrt_cancel* cancel) { delete cancel; }

wanrt_status wanrt_generate(const wanrt_model* model, const wanrt_request* request,
                            const wanrt_callbacks* callbacks, const char* out_path,
                            char** report_json) {
  return guard([&] {
    require(model, "model");
    if (report_json) *report_json = nullptr;
    const wanrt::wan22::GenerateRequest r = to_request(request);
    const wanrt_callbacks c = callbacks ? *callbacks : wanrt_callbacks{};
    wanrt::wan22::Callbacks cb;
    if (c.progress) {
      cb.progress = [c](const wanrt::wan22::ProgressEvent& e) {
        c.progress(c.user, e.stage.c_str(), e.step, e.total);
      };
    }
    if (c.cancel) {
      cb.cancelled = [cancel = c.cancel] { return cancel->raised.load(); };
    }
    if (c.frames) {
      cb.on_frames = [c](const at::Tensor& frames) {
        const at::Tensor u8 = frames.contiguous();
        c.frames(c.user, u8.data_ptr<uint8_t>(), static_cast<int>(u8.size(0)),
                 static_cast<int>(u8.size(2)), static_cast<int>(u8.size(1)));
      };
    }
    const wanrt::bindings::EngineRun run =
        model->engine.generate(r, cb, out_path ? std::string(out_path) : std::string());
    if (report_json) *report_json = copy_out(run.report.dump(2));
  });
}

wanrt_status wanrt_debug_fail(wanrt_status status) {
  return guard([&] {
    switch (status) {
      case WANRT_OK: return;
      case WANRT_ERROR_USAGE: throw Error(ErrorCategory::kUsage, "debug: usage", "a hint");
      case WANRT_ERROR_BUNDLE: throw Error(ErrorCategory::kBundle, "debug: bundle", "a hint");
      case WANRT_ERROR_RESOURCES:
        throw Error(ErrorCategory::kResources, "debug: resources", "a hint");
      case WANRT_ERROR_OUT_OF_MEMORY: throw std::bad_alloc();
      case WANRT_ERROR_CANCELLED:
        throw Error(ErrorCategory::kCancelled, "debug: cancelled", "a hint");
      case WANRT_ERROR_INTERNAL: throw std::logic_error("debug: internal");
    }
    throw Error(ErrorCategory::kUsage, fmt::format("debug: unknown status {}", int(status)),
                "pass a wanrt_status value");
  });
}

}  // extern "C"
