"""Speed benchmarks of ours against the authors' way of running each model: shared timing, one module per suite."""
from polyplib.bench.record import BenchResult, SuiteResult
from polyplib.bench.registry import BenchOptions, format_table, get_suite, register_suite, run_bench

__all__ = ["BenchOptions", "BenchResult", "SuiteResult", "format_table", "get_suite", "register_suite", "run_bench"]
