"""Benchmark pieces: measured matmul peak, recipes, and the text table."""
import torch

from polyplib.engine.bench import format_table, matmul_peak_flops, recipes


def test_matmul_peak_is_a_plausible_cpu_rate():
    peak = matmul_peak_flops(torch.device("cpu"), quick=True)
    assert 1e8 < peak < 1e13  # between 0.1 GFLOP/s and 10 TFLOP/s on any CPU


def test_reference_line_is_the_authors_setting():
    ref, ours = recipes(torch.device("cpu"), quick=True)["authors"], recipes(torch.device("cpu"), quick=True)["ours"]
    assert (ref.amp_dtype, ref.compile, ref.channels_last, ref.legacy_loss) == (None, False, False, True)
    assert not ours.legacy_loss and (ours.amp_dtype, ours.channels_last) == (None, False)  # NCHW fp32 on the CPU


def test_format_table_shows_ratios():
    line = {"variant": "official", "kind": "train", "batch": 8, "step_ms": 100.0, "peak_mem_mb": 1000.0, "mfu": 0.25}
    results = {"provenance": {"machine": "m", "torch": "t"}, "suites": {"gmsrf": {
        "image_size": 256, "peak_flops": 2e12, "peak_flops_dtype": "bf16",
        "lines": [{**line, "recipe": "ours", "images_per_s": 80.0},
                  {**line, "recipe": "authors", "images_per_s": 20.0}],
        "comparisons": [{"variant": "official", "speedup": 4.0, "memory_ratio": 0.3}]}}}
    text = format_table(results)
    assert "speed-up x4.00, memory ratio 0.30" in text and "25.0%" in text and "2.00 TFLOP/s" in text
