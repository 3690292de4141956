"""Benchmark pieces: measured matmul peak, recipes, and the text table."""
import pytest
import torch

from polyplib.bench import BenchResult, format_table
from polyplib.bench.gmsrf import authors_loss, recipes
from polyplib.bench.timing import (comparison, interleaved, matmul_peak_flops, paired_ratios, summarize, timed,
                                   timing_line, trust_warning)
from polyplib.engine.precision import channels_last_for, native_bf16_cpu, precision_name, resolve_precision


def test_matmul_peak_is_a_plausible_cpu_rate():
    peak = matmul_peak_flops(torch.device("cpu"), quick=True)
    assert 1e8 < peak < 1e13  # between 0.1 GFLOP/s and 10 TFLOP/s on any CPU


def test_reference_line_is_the_authors_setting():
    ref, ours = recipes(torch.device("cpu"), quick=True)["authors"], recipes(torch.device("cpu"), quick=True)["ours"]
    assert (ref.amp_dtype, ref.compile, ref.channels_last, ref.legacy_loss, ref.fused_adam) == (None, False, False,
                                                                                                 True, False)
    # ours on the CPU is the lite recipe where the CPU has native bf16 (bf16 + channels-last), fp32 NCHW elsewhere
    from polyplib.campaigns.profiles import profile_settings

    lite, native = profile_settings("lite").recipe, native_bf16_cpu()
    assert not ours.legacy_loss and ours.fused_adam and not ours.compile
    precision = precision_name(lite["precision"], "cpu", native)  # the lite runs resolve auto the same way
    assert lite["precision"] == "auto" and precision == ("bf16" if native else "fp32")
    assert (ours.amp_dtype, ours.channels_last) == (resolve_precision(precision, torch.device("cpu"))[0],
                                                    channels_last_for(lite.get("channels_last"), "cpu", precision))


def test_authors_loss_line_equals_the_legacy_structure_loss():
    from polyplib.losses import build_loss

    torch.manual_seed(0)
    mask = (torch.rand(2, 1, 40, 40) > 0.6).float()
    outs = tuple(torch.randn(2, 1, 40, 40) * 2 for _ in range(4))
    authors, ours = authors_loss()(outs, mask), build_loss("structure", legacy_bugs=True)(outs, mask)
    assert authors.item() == pytest.approx(ours.item(), rel=1e-5)
    assert abs(authors.item() - build_loss("structure")(outs, mask).item()) > 1e-3  # the bugs change the value


def test_format_table_shows_ratios():
    line = {"variant": "official", "kind": "train", "batch": 8, "step_ms": 100.0, "peak_mem_mb": 1000.0, "mfu": 0.25}
    results = {"provenance": {"machine": "m", "torch": "t"}, "suites": {"gmsrf": {
        "image_size": 256, "peak_flops": 2e12, "peak_flops_dtype": "bf16",
        "lines": [{**line, "recipe": "ours", "images_per_s": 80.0},
                  {**line, "recipe": "authors", "images_per_s": 20.0}],
        "comparisons": [{"variant": "official", "speedup": 4.0, "memory_ratio": 0.3}]}}}
    text = format_table(BenchResult.from_json(results))
    assert "speed-up x4.00, memory ratio 0.30" in text and "25.0%" in text and "2.00 TFLOP/s" in text


# -- honest figures: repeated, interleaved timings with their spread (controlled inputs, nothing timed) -------------


def test_summarize_gives_median_range_and_relative_spread():
    assert summarize([3.0, 1.0, 2.0, 10.0]) == {"median": 2.5, "min": 1.0, "max": 10.0, "spread": 9.0 / 2.5}


def test_ratios_pair_blocks_timed_back_to_back():
    assert paired_ratios([1.0, 2.0], [2.0, 6.0]) == [2.0, 3.0]  # seconds: authors / ours = speed-up


def test_interleaving_alternates_the_order_so_both_lines_see_the_same_load():
    calls = []
    fns = {"ours": lambda: calls.append("o"), "authors": lambda: calls.append("a")}
    times = interleaved(fns, torch.device("cpu"), repeats=4, steps=2, warmup=1)
    assert "".join(calls) == "oa" + "ooaa" + "aaoo" + "ooaa" + "aaoo"
    assert [len(t) for t in times.values()] == [4, 4] and all(s >= 0 for t in times.values() for s in t)


def measured(seconds: list[float]) -> dict:
    """A training line as `compare_lines` returns it, from given seconds per step."""
    return {**timing_line(seconds, 8, "step_ms"), "seconds": seconds, "peak_mem_mb": None}


def test_a_quiet_comparison_is_trusted_and_a_noisy_one_is_flagged():
    quiet = comparison("paper", 8, 1.0, measured([1.0, 1.05, 1.02]), measured([2.0, 2.1, 2.04]))
    assert quiet["speedup"] == pytest.approx(2.0) and quiet["warning"] is None
    assert quiet["speedup_min"] == pytest.approx(2.0) and quiet["speedup_max"] == pytest.approx(2.0)
    # a load spike during one authors block: 7x in that pair, 1x in the others
    ours, authors = [1.0, 1.0, 1.0], [1.0, 7.0, 1.0]
    noisy = comparison("paper", 8, 1.0, measured(ours), measured(authors))
    assert (noisy["speedup"], noisy["speedup_min"], noisy["speedup_max"]) == (1.0, 1.0, 7.0)
    assert "cannot be trusted" in noisy["warning"] and "ratio 600%" in noisy["warning"]
    assert "only 2" in trust_warning({"ours": 0.0}, repeats=2)


def test_timing_line_reports_images_per_second_range():
    line = timing_line([0.5, 0.25, 1.0], batch=2, key="step_ms")
    assert (line["images_per_s"], line["images_per_s_min"], line["images_per_s_max"]) == (4.0, 2.0, 8.0)
    assert (line["step_ms"], line["step_ms_min"], line["step_ms_max"], line["repeats"]) == (500.0, 250.0, 1000.0, 3)


def test_format_table_prints_ranges_and_the_warning():
    line = {"variant": "paper", "kind": "train", "batch": 8, "peak_mem_mb": None, "mfu": 0.1,
            **timing_line([1.0, 1.0, 2.0], 8, "step_ms")}
    results = {"provenance": {"machine": "m", "torch": "t"}, "suites": {"gmsrf": {
        "image_size": 64, "peak_flops": 1e11, "peak_flops_dtype": "fp32", "repeats": 3,
        "lines": [{**line, "recipe": "ours"}, {**line, "recipe": "authors"}],
        "comparisons": [{"variant": "paper", "speedup": 1.5, "speedup_min": 0.9, "speedup_max": 7.0, "repeats": 3,
                         "memory_ratio": None, "warning": "timings vary"}]}}}
    text = format_table(BenchResult.from_json(results))
    assert "8.00 [4.00-8.00]" in text and "1000.0 [1000.0-2000.0]" in text
    assert "speed-up x1.50 (range x0.90-x7.00 over 3 paired repeats)" in text and "WARNING paper: timings vary" in text


def test_format_table_prints_polyp_sam_ranges_and_warnings():
    line = {"batch": 2, **timing_line([1.0, 2.0, 1.0], 2, "step_ms")}
    sam = {"size": "tiny", "image_size": 64, "latency_ms": 3.0, "full_speedup": 1.5, "full_speedup_min": 1.2,
           "full_speedup_max": 1.9, "decoder_speedup": 2.0, "decoder_speedup_min": 1.9, "decoder_speedup_max": 2.1,
           "warnings": {"full": "timings vary"},
           "lines": [{**line, "strategy": "full", "recipe": r} for r in ("ours", "authors")]}
    text = format_table(BenchResult.from_json({"provenance": {"machine": "m", "torch": "t"}, "suites": {"sam": sam}}))
    assert "2.00 [1.00-2.00]" in text and "full: ours/authors speed-up x1.50 (range x1.20-x1.90)" in text
    assert "WARNING Polyp-SAM full: timings vary" in text


# -- the record, the registry of suites ------------------------------------------------------------------------------


def test_every_stored_bench_result_loads_and_writes_back_byte_identical(tmp_path):
    import json
    from pathlib import Path

    stored = sorted(Path(__file__).parents[1].glob("results/*/bench/*.json"))
    assert stored
    for path in stored:
        text, result = path.read_text(), BenchResult.load(path)
        assert result.suites["gmsrf"].lines and result.suites["gmsrf"].comparisons
        indented = json.dumps(result.to_json(), indent=2) + "\n"  # `polyplib bench --json` output kept as a file
        written = result.write(tmp_path / path.name).read_text()  # `polyplib bench --out`
        assert text in (written, indented), path


def test_unknown_suites_and_unreadable_results_are_one_line_errors(tmp_path):
    from polyplib.bench import get_suite
    from polyplib.errors import ConfigError, DataError

    with pytest.raises(ConfigError, match="choose one of gmsrf, sam, all"):
        get_suite("unet")
    (tmp_path / "b.json").write_text('{"suites": {}}')
    with pytest.raises(DataError, match="b.json is not a readable `polyplib bench` result"):
        BenchResult.load(tmp_path / "b.json")


def test_the_gmsrf_suite_needs_nothing_of_polyp_sam():
    import ast
    from pathlib import Path

    import polyplib.bench.gmsrf as gmsrf
    import polyplib.bench.registry as registry
    import polyplib.bench.timing as timing

    for module in (gmsrf, registry, timing):
        tree = ast.parse(Path(module.__file__).read_text())
        names = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
        names += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        assert not [n for n in names if n and n.startswith("polyplib.sam")], module.__name__
    from polyplib.bench import get_suite

    assert get_suite("gmsrf").table is gmsrf.gmsrf_table and get_suite("gmsrf").run is gmsrf.bench_gmsrf


def test_timed_gives_one_time_per_call_after_the_warmup():
    calls = []
    times = timed(lambda: calls.append(1), torch.device("cpu"), steps=3, warmup=2)
    assert len(calls) == 5 and len(times) == 3 and all(t >= 0 for t in times)
