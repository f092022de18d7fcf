/* The C API from C (compiled as C99 with -Wall -Wextra -Werror -pedantic): open, inspect,
 * plan, generate with progress, frames and cancellation; every status category made to
 * happen; two runs on one model from two threads give the frames of one run alone.
 * Usage: test_c_api TINY_BUNDLES_DIR */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wanrt/wanrt.h"

static int failures = 0;

#define CHECK(cond)                                                                  \
  do {                                                                               \
    if (!(cond)) {                                                                   \
      fprintf(stderr, "%s:%d: CHECK failed: %s (last error: %s)\n", __FILE__, __LINE__, \
              #cond, wanrt_last_error());                                            \
      ++failures;                                                                    \
    }                                                                                \
  } while (0)

typedef struct {
  int denoise_steps;
  int frames;
  int width, height;
  unsigned long long checksum;
  wanrt_cancel* cancel_at_first_step;
} RunState;

static void on_progress(void* user, const char* stage, int step, int total) {
  RunState* s = (RunState*)user;
  (void)total;
  if (strcmp(stage, "denoise") == 0 && step > 0) {
    ++s->denoise_steps;
    if (s->cancel_at_first_step) wanrt_cancel_request(s->cancel_at_first_step);
  }
}

static void on_frames(void* user, const uint8_t* rgb, int count, int width, int height) {
  RunState* s = (RunState*)user;
  size_t i, n = (size_t)count * (size_t)width * (size_t)height * 3;
  s->frames += count;
  s->width = width;
  s->height = height;
  for (i = 0; i < n; ++i) s->checksum = s->checksum * 1099511628211ULL + rgb[i];
}

static wanrt_request small_request(void) {
  wanrt_request r;
  wanrt_request_init(&r);
  r.prompt = "a red fox running through fresh snow";
  r.frames = 5;
  r.steps = 2;
  r.seed = 7;
  return r;
}

static wanrt_status run(const wanrt_model* model, RunState* state, char** report) {
  wanrt_request r = small_request();
  wanrt_callbacks cb;
  memset(&cb, 0, sizeof cb);
  cb.progress = on_progress;
  cb.frames = on_frames;
  cb.user = state;
  cb.cancel = state->cancel_at_first_step;
  return wanrt_generate(model, &r, &cb, NULL, report);
}

typedef struct {
  const wanrt_model* model;
  RunState state;
  wanrt_status status;
} Job;

static void* job_main(void* arg) {
  Job* job = (Job*)arg;
  job->status = run(job->model, &job->state, NULL);
  return NULL;
}

int main(int argc, char** argv) {
  char bundle[4096];
  wanrt_model* model = NULL;
  wanrt_model* other = NULL;
  wanrt_open_options options;
  char* json = NULL;
  RunState alone;
  wanrt_request request;
  int i;

  if (argc != 2) {
    fprintf(stderr, "usage: %s TINY_BUNDLES_DIR\n", argv[0]);
    return 2;
  }
  snprintf(bundle, sizeof bundle, "%s/tiny-ti2v", argv[1]);
  CHECK(wanrt_abi_version() == WANRT_ABI_VERSION);
  CHECK(strlen(wanrt_version()) >= 5);
  CHECK(strcmp(wanrt_status_name(WANRT_ERROR_OUT_OF_MEMORY), "out-of-memory") == 0);

  /* the host allocator: a bad name, then the process's decision, which later calls cannot undo */
  CHECK(wanrt_set_host_allocator("bogus") == WANRT_ERROR_USAGE);
  CHECK(strstr(wanrt_last_error_hint(), "system") != NULL);
  CHECK(wanrt_set_host_allocator(NULL) == WANRT_ERROR_USAGE);
  CHECK(wanrt_set_host_allocator("system") == WANRT_OK);
  CHECK(wanrt_set_host_allocator("system") == WANRT_OK);
  CHECK(wanrt_set_host_allocator("tuned") == WANRT_ERROR_USAGE);
  CHECK(strstr(wanrt_last_error(), "already set up as 'system'") != NULL);

  /* bundle: not a bundle directory */
  CHECK(wanrt_open("/nonexistent/bundle", NULL, &model) == WANRT_ERROR_BUNDLE);
  CHECK(model == NULL);
  CHECK(strlen(wanrt_last_error()) > 0);
  CHECK(strlen(wanrt_last_error_hint()) > 0);
  /* usage: NULL arguments and bad setting names */
  CHECK(wanrt_open(NULL, NULL, &model) == WANRT_ERROR_USAGE);
  wanrt_open_options_init(&options);
  options.offload = "sometimes";
  CHECK(wanrt_open(bundle, &options, &model) == WANRT_ERROR_USAGE);
  CHECK(strstr(wanrt_last_error(), "offload") != NULL);
  /* resources: fp16 compute on the CPU */
  wanrt_open_options_init(&options);
  options.device = "cpu";
  options.dtype = "fp16";
  CHECK(wanrt_open(bundle, &options, &model) == WANRT_ERROR_RESOURCES);

  wanrt_open_options_init(&options);
  options.threads = 1;
  CHECK(wanrt_open(bundle, &options, &model) == WANRT_OK);
  CHECK(model != NULL);
  CHECK(strcmp(wanrt_last_error(), "") == 0);

  CHECK(wanrt_inspect(model, &json) == WANRT_OK);
  CHECK(json != NULL && strstr(json, "\"model_id\"") != NULL && strstr(json, "\"dit\"") != NULL);
  wanrt_free(json);
  request = small_request();
  json = NULL;
  CHECK(wanrt_plan(model, &request, &json) == WANRT_OK);
  CHECK(json != NULL && strstr(json, "\"plan\"") != NULL && strstr(json, "\"estimate\"") != NULL);
  wanrt_free(json);

  /* a run with progress and streamed frames */
  memset(&alone, 0, sizeof alone);
  json = NULL;
  CHECK(run(model, &alone, &json) == WANRT_OK);
  CHECK(alone.denoise_steps == 2);
  CHECK(alone.frames == 5);
  CHECK(alone.width > 0 && alone.height > 0);
  CHECK(json != NULL && strstr(json, "\"expert_trace\"") != NULL);
  /* the allocator the process chose before opening, as the report states it */
  CHECK(json != NULL && strstr(json, "\"policy\": \"system\"") != NULL);
  wanrt_free(json);

  /* usage: 6 frames is not 4n + 1; the hint names what would work */
  request = small_request();
  request.frames = 6;
  CHECK(wanrt_generate(model, &request, NULL, NULL, NULL) == WANRT_ERROR_USAGE);
  CHECK(strstr(wanrt_last_error(), "6") != NULL);
  request.prompt = NULL;
  CHECK(wanrt_generate(model, &request, NULL, NULL, NULL) == WANRT_ERROR_USAGE);

  /* cancelled from the progress callback, through a flag */
  {
    RunState cancelled;
    memset(&cancelled, 0, sizeof cancelled);
    cancelled.cancel_at_first_step = wanrt_cancel_create();
    CHECK(run(model, &cancelled, NULL) == WANRT_ERROR_CANCELLED);
    CHECK(cancelled.denoise_steps == 1);
    CHECK(cancelled.frames == 0);
    wanrt_cancel_reset(cancelled.cancel_at_first_step);
    wanrt_cancel_free(cancelled.cancel_at_first_step);
  }

  /* out of memory: a budget no weight fits in, without fallback */
  wanrt_open_options_init(&options);
  options.threads = 1;
  options.vram_budget = 1024;
  options.fallback = 0;
  CHECK(wanrt_open(bundle, &options, &other) == WANRT_OK);
  CHECK(wanrt_generate(other, &request, NULL, NULL, NULL) == WANRT_ERROR_USAGE); /* no prompt */
  request = small_request();
  CHECK(wanrt_generate(other, &request, NULL, NULL, NULL) == WANRT_ERROR_OUT_OF_MEMORY);
  CHECK(strlen(wanrt_last_error_hint()) > 0);
  wanrt_close(other);

  /* LoRAs at open and the lightning preset: a bad experts string is a usage error, a LoRA
     that does not fit a bundle error, and a good pair runs 4 steps */
  {
    char high[1024], low[1024], other_family[1024], path[1024];
    wanrt_lora loras[2];
    snprintf(high, sizeof high, "%s/loras/t2v-moe-high.safetensors", argv[1]);
    snprintf(low, sizeof low, "%s/loras/t2v-moe-low.safetensors", argv[1]);
    snprintf(other_family, sizeof other_family, "%s/loras/other-family.safetensors", argv[1]);
    snprintf(path, sizeof path, "%s/tiny-t2v-moe", argv[1]);
    loras[0].path = high;
    loras[0].strength = 1.0;
    loras[0].experts = "high";
    loras[1].path = low;
    loras[1].strength = 0.5;
    loras[1].experts = "sideways";
    wanrt_open_options_init(&options);
    options.threads = 1;
    options.loras = loras;
    options.lora_count = 2;
    CHECK(wanrt_open(path, &options, &other) == WANRT_ERROR_USAGE);
    CHECK(strstr(wanrt_last_error(), "sideways") != NULL);
    loras[1].experts = "low";
    CHECK(wanrt_open(path, &options, &other) == WANRT_OK);
    request = small_request();
    request.steps = 0; /* the preset's 4 */
    request.preset = "lightning";
    CHECK(wanrt_generate(other, &request, NULL, NULL, &json) == WANRT_OK);
    CHECK(json != NULL && strstr(json, "\"dit_calls\": 4") != NULL);
    CHECK(strstr(json, "\"preset\": \"lightning\"") != NULL);
    CHECK(strstr(json, "t2v-moe-high.safetensors") != NULL);
    wanrt_free(json);
    wanrt_close(other);
    loras[0].path = other_family;
    loras[0].experts = NULL;
    options.lora_count = 1;
    snprintf(path, sizeof path, "%s/tiny-ti2v", argv[1]);
    CHECK(wanrt_open(path, &options, &other) == WANRT_ERROR_BUNDLE);
    CHECK(strstr(wanrt_last_error(), "does not fit") != NULL);
  }

  /* internal, and every other category through the test hook */
  CHECK(wanrt_debug_fail(WANRT_ERROR_INTERNAL) == WANRT_ERROR_INTERNAL);
  CHECK(strstr(wanrt_last_error(), "debug: internal") != NULL);
  CHECK(wanrt_debug_fail(WANRT_ERROR_OUT_OF_MEMORY) == WANRT_ERROR_OUT_OF_MEMORY);
  CHECK(wanrt_debug_fail(WANRT_ERROR_CANCELLED) == WANRT_ERROR_CANCELLED);
  CHECK(wanrt_debug_fail(WANRT_OK) == WANRT_OK);
  CHECK(strcmp(wanrt_last_error(), "") == 0);

  /* two runs at once on one model, from two threads: each equals the run alone */
  {
    Job jobs[2];
    pthread_t threads[2];
    for (i = 0; i < 2; ++i) {
      memset(&jobs[i], 0, sizeof jobs[i]);
      jobs[i].model = model;
      CHECK(pthread_create(&threads[i], NULL, job_main, &jobs[i]) == 0);
    }
    for (i = 0; i < 2; ++i) {
      pthread_join(threads[i], NULL);
      CHECK(jobs[i].status == WANRT_OK);
      CHECK(jobs[i].state.frames == alone.frames);
      CHECK(jobs[i].state.checksum == alone.checksum);
    }
  }

  wanrt_close(model);
  wanrt_close(NULL);
  wanrt_free(NULL);
  if (failures) {
    fprintf(stderr, "%d check(s) failed\n", failures);
    return 1;
  }
  printf("C API: all checks passed\n");
  return 0;
}
