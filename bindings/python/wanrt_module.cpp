// The Python module wanrt._wanrt over the embedding engine (bindings/common/engine.h):
// wanrt.Bundle with inspect(), plan() and generate(). The GIL is released while a run works
// and taken again only inside callbacks; Ctrl-C cancels the run and raises KeyboardInterrupt.
#include <pybind11/functional.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "bindings/common/engine.h"
#include "bindings/common/plan_settings_text.h"
#include "runtime/error.h"
#include "runtime/host_allocator.h"
#include "runtime/version.h"

namespace py = pybind11;
using wanrt::Error;
using wanrt::ErrorCategory;

namespace {

const char* class_of(ErrorCategory category) {
  switch (category) {
    case ErrorCategory::kUsage: return "UsageError";
    case ErrorCategory::kBundle: return "BundleError";
    case ErrorCategory::kResources: return "ResourcesError";
    case ErrorCategory::kOutOfMemory: return "OutOfMemoryError";
    case ErrorCategory::kCancelled: return "CancelledError";
    case ErrorCategory::kInternal: return "InternalError";
  }
  return "InternalError";
}

// A wanrt::Error as the wanrt package's exception class of its category.
void raise(const Error& e) {
  const py::object cls = py::module_::import("wanrt").attr(class_of(e.category()));
  PyErr_SetObject(cls.ptr(), cls(std::string(e.what()), e.hint()).ptr());
}

// JSON documents become Python objects through the json module (exact, no custom walker).
py::object to_python(const nlohmann::json& doc) {
  return py::module_::import("json").attr("loads")(doc.dump());
}

// numpy uint8 [H, W, 3] -> a tensor that owns a copy.
at::Tensor image_tensor(const py::array& image) {
  const auto rgb = py::array_t<std::uint8_t, py::array::c_style | py::array::forcecast>::ensure(image);
  if (!rgb || rgb.ndim() != 3 || rgb.shape(2) != 3) {
    throw Error(ErrorCategory::kUsage, "image must be a uint8 array of shape [height, width, 3]",
                "convert it, e.g. numpy.asarray(PIL.Image.open(path).convert('RGB'))");
  }
  at::Tensor t = at::empty({rgb.shape(0), rgb.shape(1), 3}, at::kByte);
  std::memcpy(t.data_ptr<std::uint8_t>(), rgb.data(), static_cast<std::size_t>(t.numel()));
  return t;
}

py::array_t<std::uint8_t> to_numpy(const at::Tensor& frames) {
  const at::Tensor c = frames.contiguous();
  py::array_t<std::uint8_t> out({c.size(0), c.size(1), c.size(2), c.size(3)});
  std::memcpy(out.mutable_data(), c.data_ptr<std::uint8_t>(), static_cast<std::size_t>(c.numel()));
  return out;
}

struct RequestArgs {
  std::string prompt;
  std::optional<std::string> negative_prompt, sampler;
  std::optional<int> width, height, frames, steps;
  std::int64_t seed = 0;
  std::optional<double> guidance, shift;
  std::optional<py::array> image;
  std::optional<std::string> preset;

  wanrt::wan22::GenerateRequest request() const {
    wanrt::wan22::GenerateRequest r;
    r.prompt = prompt;
    r.negative_prompt = negative_prompt;
    r.width = width;
    r.height = height;
    r.frames = frames;
    r.steps = steps;
    r.seed = seed;
    r.guidance = guidance;
    r.shift = shift;
    r.sampler = sampler;
    r.preset = preset;
    if (image) r.image = image_tensor(*image);
    return r;
  }
};

class Bundle {
 public:
  Bundle(const std::string& path, bool verify, int threads, const std::string& device,
         const std::string& dtype, const std::string& offload, const std::string& host_residency,
         std::int64_t vram_budget, bool auto_optimize, bool fallback,
         const std::vector<std::string>& loras, const std::vector<std::string>& loras_high,
         const std::vector<std::string>& loras_low, bool lora_allow_partial,
         const std::string& vae_dtype) {
    wanrt::bindings::PlanSettingsText text;
    text.device = device;
    text.dtype = dtype;
    text.offload = offload;
    text.host_residency = host_residency;
    text.vae_dtype = vae_dtype;
    wanrt::bindings::EngineOptions options;
    options.verify = verify;
    options.threads = threads;
    options.settings = wanrt::bindings::parse_plan_settings(text, "");
    options.auto_optimize = auto_optimize;
    if (vram_budget < 0) {
      throw Error(ErrorCategory::kUsage, "vram_budget is negative", "pass 0 for no budget");
    }
    options.vram_budget = vram_budget;
    options.fallback = fallback;
    using wanrt::wan22::LoraExperts;
    for (const auto& l : loras) options.loras.push_back(wanrt::wan22::parse_lora_spec(l, LoraExperts::kAll));
    for (const auto& l : loras_high) options.loras.push_back(wanrt::wan22::parse_lora_spec(l, LoraExperts::kHigh));
    for (const auto& l : loras_low) options.loras.push_back(wanrt::wan22::parse_lora_spec(l, LoraExperts::kLow));
    options.lora_allow_partial = lora_allow_partial;
    py::gil_scoped_release release;
    engine_.emplace(path, options);
  }

  py::object inspect() const { return to_python(engine_->inspect()); }

  py::object plan(const RequestArgs& args) const {
    const auto request = args.request();
    nlohmann::json doc;
    {
      py::gil_scoped_release release;
      doc = engine_->plan(request);
    }
    return to_python(doc);
  }

  py::tuple generate(const RequestArgs& args, const py::object& on_progress,
                     const py::object& on_frames, const std::string& out, bool keep_frames) const {
    const auto request = args.request();
    std::vector<at::Tensor> kept;
    bool interrupted = false;
    wanrt::wan22::Callbacks callbacks;
    if (!on_progress.is_none()) {
      callbacks.progress = [&on_progress](const wanrt::wan22::ProgressEvent& e) {
        py::gil_scoped_acquire gil;
        on_progress(e.stage, e.step, e.total);
      };
    }
    callbacks.cancelled = [&interrupted] {
      py::gil_scoped_acquire gil;
      if (PyErr_CheckSignals() != 0) {  // a KeyboardInterrupt (or a handler's exception)
        PyErr_Clear();
        interrupted = true;
      }
      return interrupted;
    };
    if (!on_frames.is_none() || keep_frames) {
      callbacks.on_frames = [&](const at::Tensor& frames) {
        if (keep_frames) kept.push_back(frames);
        if (!on_frames.is_none()) {
          py::gil_scoped_acquire gil;
          on_frames(to_numpy(frames));
        }
      };
    }
    wanrt::bindings::EngineRun run;
    try {
      py::gil_scoped_release release;
      run = engine_->generate(request, callbacks, out);
    } catch (const Error& e) {
      if (interrupted && e.category() == ErrorCategory::kCancelled) {
        PyErr_SetNone(PyExc_KeyboardInterrupt);
        throw py::error_already_set();
      }
      throw;
    }
    py::object frames = py::none();
    if (keep_frames && !kept.empty()) frames = to_numpy(at::cat(kept, 0));
    return py::make_tuple(frames, to_python(run.report));
  }

 private:
  std::optional<wanrt::bindings::Engine> engine_;
};

}  // namespace

PYBIND11_MODULE(_wanrt, m) {
  m.doc() = "wanrt's C++ runtime (use the wanrt package, not this module directly)";
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const Error& e) {
      raise(e);
    } catch (const py::error_already_set&) {
      throw;
    } catch (const py::builtin_exception&) {
      throw;
    } catch (const std::exception& e) {
      const bool oom = wanrt::is_out_of_memory(e);
      raise(Error(oom ? ErrorCategory::kOutOfMemory : ErrorCategory::kInternal,
                  wanrt::first_line(e.what()),
                  oom ? "offload more, lower the precision, the size or the frame count"
                      : "an unexpected error inside wanrt; please report it"));
    }
  });
  m.def("version", [] { return std::string(wanrt::version()); }, "wanrt's version");
  m.def(
      "set_host_allocator",
      [](const std::string& policy) {
        const auto wanted = wanrt::parse_host_allocator_policy(policy);
        const auto state = wanrt::configure_host_allocator(wanted, true);
        if (state.policy != wanted) {
          throw Error(ErrorCategory::kUsage,
                      "the host allocator is already set up as '" +
                          std::string(wanrt::host_allocator_policy_name(state.policy)) + "'",
                      "call set_host_allocator() before opening the first Bundle");
        }
      },
      py::arg("policy"),
      R"(How wanrt treats the process's malloc: "tuned" (the default, set when the first Bundle
opens: large tensors come from glibc's heap, trimmed at stage ends) or "system" (leave it
alone). The first decision in the process stands: call this before opening a Bundle.)");

  py::class_<Bundle>(m, "Bundle", R"(A Wan 2.2 bundle opened for generation.

Bundle(path, *, verify=True, threads=0, device="", dtype="", offload="", host_residency="",
       vram_budget=0, auto_optimize=False, fallback=True, loras=[], loras_high=[],
       loras_low=[], lora_allow_partial=False, vae_dtype="")

loras: LoRA files merged into every DiT at open, each "FILE" or "FILE:STRENGTH" (stacked in
order); loras_high / loras_low: the same for one expert of an A14B model.

vae_dtype: "bf16" decodes faster on CPUs with bf16 units, lossy against the default fp32.

With auto_optimize or any of device/dtype/offload/host_residency/vae_dtype, each request is
planned for this machine with those settings fixed (as `wanrun generate --auto-optimize`);
otherwise runs use everything resident on the CPU in the bundle's dtype. Methods may be called
from several threads at once; each generate() runs in its own session on the shared weights.)")
      .def(py::init<const std::string&, bool, int, const std::string&, const std::string&,
                    const std::string&, const std::string&, std::int64_t, bool, bool,
                    const std::vector<std::string>&, const std::vector<std::string>&,
                    const std::vector<std::string>&, bool, const std::string&>(),
           py::arg("path"), py::kw_only(), py::arg("verify") = true, py::arg("threads") = 0,
           py::arg("device") = "", py::arg("dtype") = "", py::arg("offload") = "",
           py::arg("host_residency") = "", py::arg("vram_budget") = 0,
           py::arg("auto_optimize") = false, py::arg("fallback") = true,
           py::arg("loras") = std::vector<std::string>{},
           py::arg("loras_high") = std::vector<std::string>{},
           py::arg("loras_low") = std::vector<std::string>{},
           py::arg("lora_allow_partial") = false, py::arg("vae_dtype") = "")
      .def("inspect", &Bundle::inspect, "The bundle's contents as a dict.")
      .def(
          "plan",
          [](const Bundle& b, const std::string& prompt, std::optional<std::string> negative_prompt,
             std::optional<int> width, std::optional<int> height, std::optional<int> frames,
             std::optional<int> steps, std::int64_t seed, std::optional<double> guidance,
             std::optional<double> shift, std::optional<std::string> sampler,
             std::optional<py::array> image, std::optional<std::string> preset) {
            return b.plan({prompt, negative_prompt, sampler, width, height, frames, steps, seed,
                           guidance, shift, image, preset});
          },
          py::kw_only(), py::arg("prompt") = "", py::arg("negative_prompt") = py::none(),
          py::arg("width") = py::none(), py::arg("height") = py::none(),
          py::arg("frames") = py::none(), py::arg("steps") = py::none(), py::arg("seed") = 0,
          py::arg("guidance") = py::none(), py::arg("shift") = py::none(),
          py::arg("sampler") = py::none(), py::arg("image") = py::none(),
          py::arg("preset") = py::none(),
          "What the planner recommends for the request on this machine, as a dict.")
      .def(
          "generate",
          [](const Bundle& b, const std::string& prompt, std::optional<std::string> negative_prompt,
             std::optional<int> width, std::optional<int> height, std::optional<int> frames,
             std::optional<int> steps, std::int64_t seed, std::optional<double> guidance,
             std::optional<double> shift, std::optional<std::string> sampler,
             std::optional<py::array> image, std::optional<std::string> preset,
             const py::object& on_progress, const py::object& on_frames, const std::string& out,
             bool keep_frames) {
            return b.generate({prompt, negative_prompt, sampler, width, height, frames, steps,
                               seed, guidance, shift, image, preset},
                              on_progress, on_frames, out, keep_frames);
          },
          py::kw_only(), py::arg("prompt"), py::arg("negative_prompt") = py::none(),
          py::arg("width") = py::none(), py::arg("height") = py::none(),
          py::arg("frames") = py::none(), py::arg("steps") = py::none(), py::arg("seed") = 0,
          py::arg("guidance") = py::none(), py::arg("shift") = py::none(),
          py::arg("sampler") = py::none(), py::arg("image") = py::none(),
          py::arg("preset") = py::none(), py::arg("on_progress") = py::none(),
          py::arg("on_frames") = py::none(),
          py::arg("out") = "", py::arg("keep_frames") = true,
          R"(Generates a video; returns (frames, report).

frames: numpy uint8 [F, H, W, 3] (None with keep_frames=False); report: dict.
image: numpy uint8 [H, W, 3] (I2V: required; TI2V: optional). preset: a sampling preset
("lightning": 4 steps, shift 5, guidance 1; explicit options win). on_progress(stage, step, total)
and on_frames(frames [n, H, W, 3]) are called as the run goes. out: also write the video there
(FILE.mp4, FILE.pt or DIR/). Ctrl-C cancels and raises KeyboardInterrupt.)");
}
