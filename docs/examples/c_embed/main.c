/* Embedding wanrt from C: open a bundle, plan a request, generate it with progress on stderr,
 * and stream the decoded frames into a raw RGB file as they arrive (an application would hand
 * them to its own encoder instead).
 *
 * Usage: c_embed BUNDLE_DIR OUT.rgb PROMPT [FRAMES [STEPS [SEED]]]
 * Prints "<frames> frames <width>x<height>" on success. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <wanrt/wanrt.h>

typedef struct {
  FILE* out;
  int frames, width, height;
  int write_failed;
} Sink;

static void on_progress(void* user, const char* stage, int step, int total) {
  (void)user;
  fprintf(stderr, "\r%-12s %d/%d", stage, step, total);
  if (step == total) fputc('\n', stderr);
}

static void on_frames(void* user, const uint8_t* rgb, int count, int width, int height) {
  Sink* sink = (Sink*)user;
  const size_t bytes = (size_t)count * (size_t)width * (size_t)height * 3;
  if (fwrite(rgb, 1, bytes, sink->out) != bytes) sink->write_failed = 1;
  sink->frames += count;
  sink->width = width;
  sink->height = height;
}

static int fail(const char* what, wanrt_status status) {
  fprintf(stderr, "%s failed [%s]: %s\n", what, wanrt_status_name(status), wanrt_last_error());
  if (wanrt_last_error_hint()[0]) fprintf(stderr, "hint: %s\n", wanrt_last_error_hint());
  return (int)status;
}

int main(int argc, char** argv) {
  wanrt_open_options options;
  wanrt_model* model = NULL;
  wanrt_request request;
  wanrt_callbacks callbacks;
  wanrt_status status;
  Sink sink = {NULL, 0, 0, 0, 0};
  char* plan = NULL;

  if (argc < 4) {
    fprintf(stderr, "usage: %s BUNDLE_DIR OUT.rgb PROMPT [FRAMES [STEPS [SEED]]]\n", argv[0]);
    return 2;
  }
  if (wanrt_abi_version() != WANRT_ABI_VERSION) {
    fprintf(stderr, "libwanrt ABI %d, header ABI %d\n", wanrt_abi_version(), WANRT_ABI_VERSION);
    return 2;
  }
  wanrt_open_options_init(&options);
  status = wanrt_open(argv[1], &options, &model);
  if (status != WANRT_OK) return fail("open", status);

  wanrt_request_init(&request);
  request.prompt = argv[3];
  if (argc > 4) request.frames = atoi(argv[4]);
  if (argc > 5) request.steps = atoi(argv[5]);
  if (argc > 6) request.seed = atoll(argv[6]);

  /* What the planner would do on this machine (JSON; applied with options.auto_optimize). */
  status = wanrt_plan(model, &request, &plan);
  if (status != WANRT_OK) return fail("plan", status);
  fprintf(stderr, "plan: %.200s...\n", plan);
  wanrt_free(plan);

  sink.out = fopen(argv[2], "wb");
  if (!sink.out) {
    perror(argv[2]);
    wanrt_close(model);
    return 2;
  }
  memset(&callbacks, 0, sizeof callbacks);
  callbacks.progress = on_progress;
  callbacks.frames = on_frames;
  callbacks.user = &sink;
  status = wanrt_generate(model, &request, &callbacks, NULL, NULL);
  if (fclose(sink.out) != 0) sink.write_failed = 1;
  wanrt_close(model);
  if (status != WANRT_OK) {
    remove(argv[2]); /* never leave a half-written output */
    return fail("generate", status);
  }
  if (sink.write_failed) {
    remove(argv[2]);
    fprintf(stderr, "cannot write %s\n", argv[2]);
    return 4;
  }
  printf("%d frames %dx%d\n", sink.frames, sink.width, sink.height);
  return 0;
}
