/* wanrt C API: run the Wan 2.2 video models from C or any language with a C FFI.
 *
 * C99, opaque handles, no C++ types. Every function that can fail returns a wanrt_status
 * (the same categories and numbers as wanrun's exit codes) and sets the calling thread's
 * last error (wanrt_last_error, wanrt_last_error_hint); no C++ exception crosses this boundary.
 *
 * Lifetimes and ownership:
 *   - wanrt_open() gives a wanrt_model the caller frees with wanrt_close();
 *   - JSON text returned through a `char**` belongs to the caller: free it with wanrt_free();
 *   - pointers passed in (strings, pixels, callbacks' user data) are only read during the call;
 *   - frame pointers handed to a frames callback are valid only during that callback.
 * Thread safety: a wanrt_model may be used from several threads at once; each wanrt_generate()
 * runs in its own session on the shared weights. wanrt_cancel_request() may be called from any
 * thread. Callbacks run on the thread that called wanrt_generate().
 */
#ifndef WANRT_WANRT_H
#define WANRT_WANRT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define WANRT_API __attribute__((visibility("default")))
#else
#define WANRT_API
#endif

/* Bumped whenever a struct, a signature or a status value of this header changes. */
#define WANRT_ABI_VERSION 2

/* Outcome of a call; the non-zero values equal wanrun's exit codes. */
typedef enum wanrt_status {
  WANRT_OK = 0,
  WANRT_ERROR_USAGE = 2,         /* bad arguments or request values */
  WANRT_ERROR_BUNDLE = 3,        /* missing or malformed model bundle */
  WANRT_ERROR_RESOURCES = 4,     /* the machine lacks something (device, RAM, capability) */
  WANRT_ERROR_OUT_OF_MEMORY = 5, /* out of memory after every fallback */
  WANRT_ERROR_INTERNAL = 70,     /* a bug in wanrt */
  WANRT_ERROR_CANCELLED = 130    /* the caller cancelled the run */
} wanrt_status;

/* The library's version, e.g. "0.1.0". */
WANRT_API const char* wanrt_version(void);
/* The ABI version the library was built with; compare with WANRT_ABI_VERSION. */
WANRT_API int wanrt_abi_version(void);
/* "ok", "usage", "bundle", "resources", "out-of-memory", "internal", "cancelled". */
WANRT_API const char* wanrt_status_name(wanrt_status status);
/* The message of the calling thread's last failed call ("" when none). Valid until the
 * thread's next wanrt call. */
WANRT_API const char* wanrt_last_error(void);
/* What the user can do about it ("" when there is no hint). Valid like wanrt_last_error(). */
WANRT_API const char* wanrt_last_error_hint(void);
/* Frees text the library returned (JSON); NULL is ignored. */
WANRT_API void wanrt_free(void* pointer);

/* How wanrt treats the process's malloc: "tuned" (the default: the first wanrt_open() sets
 * glibc's mmap and trim thresholds so that large tensors come from the heap instead of fresh
 * pages, and wanrt trims the heap at stage ends) or "system" (leave the allocator alone, for
 * applications that manage it). The first decision in the process stands, so call this before
 * the first wanrt_open(); a later call asking for something else is WANRT_ERROR_USAGE. The
 * WANRT_HOST_ALLOCATOR environment variable decides when this is not called. */
WANRT_API wanrt_status wanrt_set_host_allocator(const char* policy);

/* A loaded bundle. */
typedef struct wanrt_model wanrt_model;

/* A LoRA merged into the DiTs' weights at open (docs/lora.md). */
typedef struct wanrt_lora {
  const char* path;    /* a .safetensors LoRA file (official, PEFT or diffusers layout) */
  double strength;     /* the multiplier of its deltas: 1 for full strength, 0 changes nothing */
  const char* experts; /* NULL or "all": every DiT; "high" / "low": one expert of an A14B model */
} wanrt_lora;

/* How to open a bundle and plan its runs. Strings may be NULL (= the planner decides). */
typedef struct wanrt_open_options {
  int verify;                 /* non-zero: check every file's sha256 (default 1) */
  int threads;                /* CPU threads, process-wide; <= 0: one per core (default 0) */
  const char* device;         /* "cpu", "cuda", "cuda:N" */
  const char* dtype;          /* "fp32", "bf16", "fp16" */
  const char* offload;        /* "none", "model", "sequential", "full" */
  const char* host_residency; /* "all", "on_demand", "disk" */
  int64_t vram_budget;        /* device bytes the weights may hold; 0: none */
  int auto_optimize;          /* non-zero: plan every request for this machine (default 0) */
  int fallback;               /* non-zero: after out-of-memory, step the plan down (default 1) */
  const wanrt_lora* loras;    /* lora_count LoRAs, stacked in this order (default none) */
  int lora_count;
  int lora_allow_partial;     /* non-zero: apply the keys that match, skip the rest (default 0) */
} wanrt_open_options;

/* Fills `options` with the defaults. */
WANRT_API void wanrt_open_options_init(wanrt_open_options* options);
/* Opens the bundle directory `bundle_dir`; `options` NULL means the defaults. With
 * auto_optimize or any setting given, every request is planned for this machine with those
 * settings fixed; otherwise everything runs on the CPU in the bundle's dtype. */
WANRT_API wanrt_status wanrt_open(const char* bundle_dir, const wanrt_open_options* options,
                                  wanrt_model** model);
/* Frees a model; NULL is ignored. No call on it may be running. */
WANRT_API void wanrt_close(wanrt_model* model);
/* The bundle's contents as JSON (model, task, components, sampling defaults). */
WANRT_API wanrt_status wanrt_inspect(const wanrt_model* model, char** json);

/* A generation request. Zero / NULL fields take the model's defaults. */
typedef struct wanrt_request {
  const char* prompt;          /* required */
  const char* negative_prompt; /* NULL or "": the model's */
  int width, height;           /* pixels, multiples of the model's size multiple */
  int frames;                  /* 4n + 1 */
  int steps;
  int64_t seed;                /* < 0: a random seed (in the report) */
  double guidance;             /* > 0: both experts' guidance scale */
  double shift;                /* > 0: flow-matching shift */
  const char* sampler;         /* "unipc", "euler" or "lightning" */
  const char* preset;          /* NULL or a sampling preset: "lightning" (4 steps, guidance 1) */
  const uint8_t* image_rgb;    /* first frame, RGB rows packed (I2V: required; TI2V: optional) */
  int image_width, image_height;
} wanrt_request;

/* Fills `request` with the defaults (all zero / NULL, seed 0). */
WANRT_API void wanrt_request_init(wanrt_request* request);
/* What the planner recommends for `request` on this machine, as JSON (plan, reasons,
 * estimate per stage, guidance when it does not fit). */
WANRT_API wanrt_status wanrt_plan(const wanrt_model* model, const wanrt_request* request,
                                  char** json);

/* A cancellation flag that any thread may raise. */
typedef struct wanrt_cancel wanrt_cancel;
WANRT_API wanrt_cancel* wanrt_cancel_create(void);
/* Asks the runs watching `cancel` to stop; they end with WANRT_ERROR_CANCELLED. */
WANRT_API void wanrt_cancel_request(wanrt_cancel* cancel);
/* Lowers the flag again (for the next run). */
WANRT_API void wanrt_cancel_reset(wanrt_cancel* cancel);
WANRT_API void wanrt_cancel_free(wanrt_cancel* cancel);

/* Progress: a stage ("text_encoder", "vae_encode", "denoise", "vae_decode") and how far. */
typedef void (*wanrt_progress_fn)(void* user, const char* stage, int step, int total);
/* Decoded frames as soon as they exist, in order: `count` frames of height x width x 3 bytes
 * (RGB, rows packed), valid during the call only. */
typedef void (*wanrt_frames_fn)(void* user, const uint8_t* rgb, int count, int width, int height);

/* Callbacks of a run; every field may be NULL. */
typedef struct wanrt_callbacks {
  wanrt_progress_fn progress;
  wanrt_frames_fn frames;
  void* user;           /* passed to both callbacks */
  wanrt_cancel* cancel; /* polled between steps and blocks */
} wanrt_callbacks;

/* Generates a video. `callbacks` may be NULL. `out_path` (may be NULL): also write the video
 * there, FILE.mp4 (H.264), FILE.pt (uint8 tensor) or DIR/ (PNG frames), atomically.
 * `report_json` (may be NULL): the run report as JSON (request as resolved, plan as applied,
 * fallbacks, stage times and peaks), to free with wanrt_free(). */
WANRT_API wanrt_status wanrt_generate(const wanrt_model* model, const wanrt_request* request,
                                      const wanrt_callbacks* callbacks, const char* out_path,
                                      char** report_json);

/* For tests of bindings: fails as a call would with an error of category `status` (an
 * unexpected C++ exception for WANRT_ERROR_INTERNAL) and returns that status. */
WANRT_API wanrt_status wanrt_debug_fail(wanrt_status status);

#ifdef __cplusplus
}
#endif

#endif /* WANRT_WANRT_H */
