"""The research book: profiles, campaign results with provenance, chapter reports, papermill runner, HTML build."""
import warnings

# tqdm.auto in a kernel without ipywidgets warns once on stderr; the chapters pass progress=False, so the warning says
# nothing about them and would make their outputs depend on whether ipywidgets is installed
warnings.filterwarnings("ignore", message="IProgress not found")
from polyplib.book.architecture import (
    GMSRFTrace, block_costs, compare_variants, copy_to_meta, trace_gmsrf, variant_costs,
)
from polyplib.book.data import dataset_key, dataset_overview, dataset_statistics, load, samples, split_sizes
from polyplib.book.figures import pick_frames, render_figures, show_figure
from polyplib.book.experiments import RECIPE_FIELDS, load_model, predict, recipe_table
from polyplib.book.profiles import REPO_ROOT, setup_notebook
from polyplib.book.analysis import Verdict, comparisons, gap_table, image_means, interval_table, report_card
from polyplib.book.plots import gap_figure, jitter_figure, learning_curves
from polyplib.book.reports import (
    GMSRF_COLUMNS, how_we_decide, PRANET_COLUMNS, SAM_COLUMNS, Section, ablation_section, ablation_verdict,
    cross_dataset_section, paper_side_by_side, precision_section, sam_paper_side_by_side, sam_prompt_section,
    sam_strategy_section, show_paper_tables, stored_bench_section, training_section, transfer_section, unit_section,
    verdict_table,
)
from polyplib.book.results import (
    RESULTS_DIR, STORED_PROFILES, CampaignView, campaign, first_result, results_index, smoke_label, stored, stored_views,
)
from polyplib.book.runner import NOTEBOOKS, add_cli, build_html, execute_notebooks, run_book, stage_book
from polyplib.book.sam import describe_sam, sam_label
from polyplib.campaigns.declared import model_options
from polyplib.campaigns.profiles import profile_settings

__all__ = [
    "REPO_ROOT", "RESULTS_DIR", "STORED_PROFILES", "NOTEBOOKS", "profile_settings",
    "setup_notebook", "dataset_key", "load", "split_sizes", "dataset_overview", "samples", "dataset_statistics",
    "RECIPE_FIELDS", "recipe_table", "load_model", "predict", "model_options",
    "GMSRF_COLUMNS", "PRANET_COLUMNS", "SAM_COLUMNS", "CampaignView", "campaign", "stored", "stored_views",
    "results_index", "first_result", "smoke_label", "verdict_table", "show_paper_tables", "sam_paper_side_by_side",
    "variant_costs", "ablation_verdict", "training_section", "cross_dataset_section", "unit_section",
    "ablation_section", "sam_strategy_section", "sam_prompt_section", "transfer_section", "paper_side_by_side", "interval_table",
    "comparisons", "image_means", "gap_table", "report_card", "gap_figure", "jitter_figure", "learning_curves",
    "precision_section", "stored_bench_section", "Section", "Verdict", "how_we_decide",
    "sam_label", "describe_sam", "GMSRFTrace", "trace_gmsrf", "block_costs", "compare_variants", "copy_to_meta",
    "pick_frames", "render_figures", "show_figure", "execute_notebooks", "stage_book", "build_html", "run_book", "add_cli",
]
