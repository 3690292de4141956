"""Campaigns: every book result as stored, resumable, skip-if-done runs (book -> campaigns -> engine)."""
from polyplib.campaigns.collect import aggregate, coverage, per_image, provenance_table, result_rows
from polyplib.campaigns.declared import (
    ABLATIONS, MODEL_LABELS, Campaign, campaigns, get_campaigns, model_options, sam_config, segmentation_config,
    segmentation_run, tests_for,
)
from polyplib.campaigns.execute import Outcome, default_work, execute, work_dir
from polyplib.campaigns.records import RunResult
from polyplib.campaigns.profiles import PROFILES, BookProfile, dataset_key, profile_settings, test_split
from polyplib.campaigns.runner import Context, parse_budget, plan, run_campaigns
from polyplib.campaigns.spec import RunSpec
from polyplib.campaigns.store import RESULT_FORMAT, Store, read_result

__all__ = [
    "BookProfile", "PROFILES", "profile_settings", "dataset_key", "test_split",
    "RunSpec", "RunResult", "Store", "RESULT_FORMAT", "read_result",
    "Campaign", "campaigns", "get_campaigns", "MODEL_LABELS", "ABLATIONS", "model_options", "segmentation_config",
    "segmentation_run", "sam_config", "tests_for",
    "Outcome", "execute", "default_work", "work_dir", "Context", "parse_budget", "plan", "run_campaigns",
    "result_rows", "aggregate", "per_image", "provenance_table", "coverage",
]
