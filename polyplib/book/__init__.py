"""The research book: profiles, recorded `full` results with provenance, papermill runner and Jupyter Book build."""
from polyplib.book.architecture import GMSRFTrace, block_costs, compare_variants, copy_to_meta, trace_gmsrf
from polyplib.book.data import dataset_key, dataset_overview, dataset_statistics, load, samples, split_sizes
from polyplib.book.experiments import (
    GMSRF_COLUMNS, PRANET_COLUMNS, RECIPE_FIELDS, ablation_models, checkpoint_of, comparison_models, evaluate_run,
    load_model, model_options, predict, recipe_table, run_dir, run_grid, train_config,
)
from polyplib.book.profiles import PROFILES, REPO_ROOT, BookProfile, profile_settings, setup_notebook
from polyplib.book.results import (
    PAPER_COLUMNS, PAPER_NAMES, RESULTS_DIR, full_results_markdown, load_results, paper_comparison,
    provenance, record_results, results_index, show_full_results, smoke_label,
)
from polyplib.book.runner import (
    NOTEBOOKS, _cli_book, add_cli, build_html, execute_notebooks, run_book, stage_book,
)
from polyplib.book.sam import describe_sam, evaluate_box_fill, evaluate_sam_run, sam_config, sam_label

__all__ = [
    "PROFILES", "REPO_ROOT", "RESULTS_DIR", "NOTEBOOKS", "BookProfile", "profile_settings", "setup_notebook",
    "dataset_key", "load", "split_sizes", "dataset_overview", "samples", "dataset_statistics",
    "GMSRF_COLUMNS", "PRANET_COLUMNS", "RECIPE_FIELDS", "model_options", "run_dir", "train_config", "evaluate_run",
    "recipe_table", "checkpoint_of", "load_model", "predict", "comparison_models", "ablation_models", "run_grid",
    "sam_config", "sam_label", "evaluate_sam_run", "describe_sam", "evaluate_box_fill",
    "GMSRFTrace", "trace_gmsrf", "block_costs", "compare_variants", "copy_to_meta",
    "PAPER_NAMES", "PAPER_COLUMNS", "paper_comparison", "provenance", "record_results", "load_results",
    "full_results_markdown", "show_full_results", "smoke_label", "results_index",
    "execute_notebooks", "stage_book", "build_html", "run_book", "add_cli",
]
