"""`wanrun bench` on a tiny bundle: the JSON document's schema, the figures that can be checked
independently (the manifest's component sizes for the ledger, bit-identical offload, bf16
rounding, dtype support on the CPU), the Markdown table, usage errors, and bench/plot.py."""
import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

WANRUN = os.environ.get("WANRUN")
TINY = os.environ.get("WANRT_TINY_BUNDLES")
SOURCE = Path(os.environ.get("WANRT_SOURCE_DIR", Path(__file__).resolve().parents[2]))
pytestmark = pytest.mark.skipif(not WANRUN, reason="WANRUN (path to the built wanrun) not set")


def tiny(name):
    if not TINY or not (Path(TINY) / name / "wanrt.yaml").is_file():
        pytest.skip("WANRT_TINY_BUNDLES not set (run through ctest)")
    return Path(TINY) / name


def bench(bundle, out, *extra):
    args = ["bench", "--model", bundle, "--frames", 5, "--steps", 2, "--threads", 1,
            "--repeat", 2, "--warmup", 1, "--progress", "none", "--out", out, *extra]
    return subprocess.run([WANRUN, *map(str, args)],
                          capture_output=True, text=True, timeout=600)


def component_bytes(bundle):
    manifest = yaml.safe_load((bundle / "wanrt.yaml").read_text())
    return {name: c["bytes"] for name, c in manifest["components"].items()}


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    bundle = tiny("tiny-ti2v")
    out = tmp_path_factory.mktemp("bench")
    r = bench(bundle, out, "--plans", "resident,model,sequential,full",
              "--dtypes", "fp32,bf16,fp16", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    return bundle, out, doc, {c["id"]: c for c in doc["cells"]}


def test_json_document_and_files(result):
    _, out, doc, _ = result
    assert doc["schema"] == "wanrt-bench/1"
    assert json.loads((out / "bench.json").read_text()) == doc
    assert (out / "bench.md").is_file()
    assert doc["repeat"] == 2 and doc["warmup"] == 1
    assert doc["request"]["frames"] == 5 and doc["request"]["steps"] == 2
    assert doc["baseline"] == "resident/fp32/none" == doc["cells"][0]["id"]
    for key in ["wanrt_version", "bundle", "model_id", "device", "planned_for", "memory_note",
                "threads", "wall_s"]:
        assert key in doc


def test_matrix_has_every_selected_cell(result):
    _, _, _, cells = result
    # tiny-ti2v's DiT has 2 blocks: sequential means k = 0 and k = 1 (half of 2).
    plans = ["resident", "model", "sequential-k0", "sequential-k1", "full"]
    assert set(cells) == {f"{p}/{d}/none" for p in plans for d in ["fp32", "bf16", "fp16"]}


def test_ran_cells_have_runs_times_and_memory(result):
    _, _, _, cells = result
    for c in cells.values():
        if c["status"] != "ok":
            continue
        assert len(c["runs"]) == 2
        total = c["times_s"]["total"]
        assert total["min"] <= total["median"] <= total["max"]
        assert sorted(r["times_s"]["total"] for r in c["runs"]) == [total["min"], total["max"]]
        assert {"text_encoder", "denoise", "vae_decode"} <= set(c["times_s"])
        assert c["memory"]["peak_rss_bytes"] > 0
        assert c["memory"]["tracked_peak_bytes"] > c["memory"]["tracked_weights_bytes"] > 0
        assert c["deviation"]["repeats_agree"]
        assert all(r["fallbacks"] == 0 for r in c["runs"])


def test_fp16_is_skipped_on_the_cpu(result):
    _, _, doc, cells = result
    if doc["device"] != "cpu":
        pytest.skip("a GPU run computes fp16")
    fp16 = [c for c in cells.values() if c["dtype"] == "fp16"]
    assert len(fp16) == 5
    for c in fp16:
        assert c["status"] == "skipped"
        assert "fp16" in c["reason"] and "CPU" in c["reason"]
        assert "runs" not in c
        # Planned all the same: the estimate of the fp16 plan on a GPU is reported, and its
        # half-precision text encoder and DiT weigh less than the fp32 ones.
        fp32 = cells[c["id"].replace("/fp16/", "/fp32/")]["estimate"]
        half = c["estimate"]["component_weights_peak_bytes"]
        assert 0 < half["dit"] < fp32["component_weights_peak_bytes"]["dit"]
        assert 0 < half["text_encoder"] < fp32["component_weights_peak_bytes"]["text_encoder"]
        assert half["vae"] == fp32["component_weights_peak_bytes"]["vae"]  # the VAE stays fp32


def test_baseline_and_offload_are_bit_identical(result):
    _, _, _, cells = result
    for plan in ["resident", "model", "sequential-k0", "sequential-k1", "full"]:
        dev = cells[f"{plan}/fp32/none"]["deviation"]
        assert dev["video_max_abs"] == 0 and dev["frames_max"] == 0 and dev["latent_max_abs"] == 0
    # Offloading a bf16 plan does not change its output either: every bf16 plan deviates from
    # the fp32 baseline by exactly what the bf16 resident plan does.
    bf16 = cells["resident/bf16/none"]["deviation"]
    for plan in ["model", "sequential-k0", "sequential-k1", "full"]:
        assert cells[f"{plan}/bf16/none"]["deviation"] == bf16


def test_offload_moves_no_host_memory_on_the_cpu(result):
    _, _, doc, cells = result
    if doc["device"] != "cpu":
        pytest.skip("on a GPU offload does move memory")
    # The CPU is its own device: a plan's weights stay where they are, so every offload plan
    # holds exactly the tensor bytes of the resident plan of its dtype, in every run.
    for dtype in ["fp32", "bf16"]:
        resident = cells[f"resident/{dtype}/none"]["memory"]["tracked_peak_bytes"]
        for plan in ["model", "sequential-k0", "sequential-k1", "full"]:
            c = cells[f"{plan}/{dtype}/none"]
            assert [r["tracked_peak_bytes"] for r in c["runs"]] == [resident] * 2, c["id"]


def test_bf16_deviates_from_fp32(result):
    _, _, _, cells = result
    dev = cells["resident/bf16/none"]["deviation"]
    assert dev["video_max_abs"] > 0 and dev["latent_max_abs"] > 0
    # bf16 rounding of weights and matmuls, not garbage: the video stays in [-1, 1].
    assert dev["video_max_abs"] < 2


def test_ledger_peaks_follow_the_manifest(result):
    bundle, _, _, cells = result
    sizes = component_bytes(bundle)
    ledger = {p: cells[f"{p}/fp32/none"]["memory"]["ledger_peak_bytes"]
              for p in ["resident", "model", "sequential-k1", "sequential-k0", "full"]}
    # Resident: every component's stored bytes; model offload: one component at a time.
    assert ledger["resident"] == sum(sizes.values())
    assert ledger["model"] == max(sizes.values())
    assert ledger["resident"] > ledger["model"] >= ledger["sequential-k1"] >= \
        ledger["sequential-k0"] >= ledger["full"] > 0
    # bf16 weights (norms kept in fp32) hold less than fp32 ones.
    assert cells["resident/bf16/none"]["memory"]["ledger_peak_bytes"] < ledger["resident"]
    # The bundle is format 2: fp32 weights are used in place from its memory-mapped files, so
    # the heap holds far less than their stored bytes; a bf16 cast makes private copies, which
    # are on the heap.
    fp32_heap = cells["resident/fp32/none"]["memory"]["tracked_weights_bytes"]
    bf16_heap = cells["resident/bf16/none"]["memory"]["tracked_weights_bytes"]
    assert fp32_heap < sum(sizes.values()) / 4
    assert bf16_heap > fp32_heap


def test_estimate_is_reported_and_matches_the_ledger_in_fp32(result):
    bundle, _, _, cells = result
    for c in cells.values():
        if c["status"] != "ok":
            continue
        est = c["estimate"]
        assert est["device_peak_bytes"] >= est["device_weights_peak_bytes"] > 0
        assert est["stages"]
    # fp32 weights are the manifest's exact sizes, so the estimate's weights of the resident
    # plan are the bundle's bytes, as the ledger's.
    assert cells["resident/fp32/none"]["estimate"]["device_weights_peak_bytes"] == \
        sum(component_bytes(bundle).values())
    # The ledger (what the residency manager acquired and released) and the estimate (what the
    # planner's formulas put on the device per stage) agree per component for fp32 weights;
    # full offload streams the text encoder and the DiT, so they hold less than whole.
    sizes = component_bytes(bundle)
    for c in cells.values():
        if c["status"] == "ok" and c["dtype"] == "fp32":
            ledger = c["memory"]["ledger_component_peak_bytes"]
            assert ledger == c["estimate"]["component_weights_peak_bytes"], c["id"]
            if c["plan"] == "full":
                assert ledger["dit"] < sizes["dit"]
                assert ledger["text_encoder"] < sizes["text_encoder"]
            else:
                assert ledger == sizes, c["id"]


def test_markdown_table_has_one_row_per_cell(result):
    _, out, doc, _ = result
    lines = (out / "bench.md").read_text().splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("| plan |"))
    assert lines[header + 1].startswith("|---|")
    rows = [line for line in lines[header + 2:] if line.startswith("| ")]
    assert len(rows) == len(doc["cells"])
    columns = lines[header].count("|")
    assert all(row.count("|") == columns for row in rows)
    assert rows[0].startswith("| resident (baseline) | fp32 | none |")
    assert sum("skipped" in row for row in rows) == sum(
        c["status"] == "skipped" for c in doc["cells"])


def test_unknown_plan_is_a_usage_error(tmp_path):
    r = bench(tiny("tiny-ti2v"), tmp_path, "--plans", "resident,no-such-plan")
    assert r.returncode == 2
    assert "unknown plan 'no-such-plan'" in r.stderr
    assert "sequential-k0" in r.stderr  # the valid names are listed
    assert not (tmp_path / "bench.json").exists()


@pytest.mark.parametrize("args, text", [
    (["--dtypes", "fp64"], "--dtypes"),
    (["--chunks", "f5,x3"], "--chunks"),
    (["--chunks", "f4"], "--chunks f4"),  # not 4n+1 frames
    (["--blocks-resident", "9"], "--blocks-resident 9"),
    (["--repeat", "0"], "--repeat"),
    (["--device", "gpu"], "--device 'gpu'"),
])
def test_bad_matrix_options_are_usage_errors(tmp_path, args, text):
    r = bench(tiny("tiny-ti2v"), tmp_path, *args)
    assert r.returncode == 2, r.stderr
    assert text in r.stderr


def test_list_prints_the_selected_cells(tmp_path):
    r = bench(tiny("tiny-t2v-moe"), tmp_path, "--list", "--plans", "model,sequential-k1",
              "--dtypes", "bf16", "--chunks", "none,t32")
    assert r.returncode == 0, r.stderr
    ids = [line.split()[0] for line in r.stdout.splitlines()]
    assert ids == ["resident/fp32/none", "model/bf16/none", "model/bf16/t32",
                   "sequential-k1/bf16/none", "sequential-k1/bf16/t32"]


def test_chunked_cell_runs_and_deviates(tmp_path):
    r = bench(tiny("tiny-ti2v"), tmp_path, "--plans", "resident", "--dtypes", "fp32",
              "--chunks", "none,t32", "--json")
    assert r.returncode == 0, r.stderr
    cells = {c["id"]: c for c in json.loads(r.stdout)["cells"]}
    assert set(cells) == {"resident/fp32/none", "resident/fp32/t32"}
    tiled = cells["resident/fp32/t32"]
    assert tiled["status"] == "ok" and tiled["vae_tile"] == 32
    # Tiles blended in pixel space change the decoded video, not the latent.
    assert tiled["deviation"]["latent_max_abs"] == 0
    assert tiled["deviation"]["video_max_abs"] > 0
    # Same weights resident either way.
    assert tiled["memory"]["ledger_peak_bytes"] == \
        cells["resident/fp32/none"]["memory"]["ledger_peak_bytes"]


def test_plot_writes_a_png(result, tmp_path):
    _, out, _, _ = result
    png = tmp_path / "bench.png"
    r = subprocess.run(["/usr/bin/python3", SOURCE / "bench" / "plot.py", out / "bench.json",
                        "--out", png], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10000


def test_plot_rejects_other_json(tmp_path):
    other = tmp_path / "x.json"
    other.write_text('{"schema": "something-else"}')
    r = subprocess.run(["/usr/bin/python3", SOURCE / "bench" / "plot.py", other],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "not a `wanrun bench` document" in r.stderr
