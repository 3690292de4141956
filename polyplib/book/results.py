"""Campaign results in the book: the live run of a chapter, the stored results of heavier profiles, provenance."""
from __future__ import annotations

import dataclasses
import os
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd

from polyplib.book.profiles import REPO_ROOT
from polyplib.campaigns import Campaign, Context, Store, coverage, get_campaigns, result_rows, run_campaigns
from polyplib.campaigns.collect import missing_runs, recipe_name, short_commit
from polyplib.campaigns.store import Erratum
from polyplib.campaigns.profiles import BookProfile, profile_settings
from polyplib.campaigns.records import RunResult
from polyplib.campaigns.runner import select
from polyplib.errors import ConfigError

RESULTS_DIR = REPO_ROOT / "results"
STORED_PROFILES = ("lite", "full")  # profiles whose results are committed under results/ and rendered by the book
MAX_NAMED = 8  # a heading names at most this many runs not run yet (else counts them)


@dataclasses.dataclass
class CampaignView:
    """The stored results of one campaign of one profile (with the checkpoints' folder when this machine ran them)."""

    settings: BookProfile
    campaign: Campaign
    results: list[RunResult]
    work: Path | None = None
    failures: dict[str, str] = dataclasses.field(default_factory=dict)  # declared run's label -> why it diverged
    errata: list[Erratum] = dataclasses.field(default_factory=list)  # stored metrics known to be wrong, left out

    @property
    def profile(self) -> str:
        return self.settings.name

    @property
    def frame(self) -> pd.DataFrame:
        """One row per run x test set (x prompt): labels, kind and every metric mean (NaN where an erratum applies)."""
        frame = result_rows(self.results)
        for erratum in self.errata if not frame.empty else ():
            rows, metrics = frame["run_id"].isin(erratum.runs), [m for m in erratum.metrics if m in frame]
            frame.loc[rows, metrics] = float("nan")
        return frame

    def erratum_runs(self, metric: str) -> set[str]:
        """The runs whose stored `metric` an erratum says is wrong."""
        return {run for e in self.errata if metric in e.metrics for run in e.runs}

    def coverage(self) -> str:
        return coverage(self.campaign, self.results)

    def checkpoint(self, run_id: str) -> Path | None:
        """The selected checkpoint of a run when its work folder is on this machine."""
        if self.work is None:
            return None
        path = self.work / run_id / "train" / "best.pt"
        return path if path.is_file() else None

    def heading(self) -> str:
        """Markdown: profile, what it means, coverage and where the numbers came from."""
        if not self.results:
            return (f"**Profile `{self.profile}`, campaign `{self.campaign.name}`: no results stored yet** "
                    f"(0 of {len(self.campaign.runs)} runs). `polyplib campaign run {self.profile} "
                    f"{self.campaign.name} --root DATA` fills them.")
        if self.profile == "smoke":  # a live run: no commit or date in the output (nbval compares it)
            return f"**Live run of campaign `{self.campaign.name}`, profile `smoke`**: {self.coverage()}."
        prov = [r.provenance for r in self.results]
        commits = sorted({short_commit(p.commit) for p in prov})
        where = Counter(p.machine if p.device in p.machine else f"{p.machine}, {p.device}" for p in prov)
        machines = sorted(f"{m} ({n} run{'s' if n > 1 else ''})" if len(where) > 1 else m for m, n in where.items())
        dates = sorted(p.date[:10] for p in prov)
        seeds = sorted({r.labels.get("seed") for r in self.results} - {None})
        scratch = " Every model is trained **from scratch** (no pretrained weights)." if self.settings.from_scratch else ""
        return (f"**Profile `{self.profile}`, campaign `{self.campaign.name}`** ({self.settings.description}): "
                f"{self.coverage()}; seeds {seeds}; commit(s) {', '.join(commits)}; {'; '.join(machines)}; "
                f"{dates[0]}{' to ' + dates[-1] if dates[-1] != dates[0] else ''}.{scratch}{recipes_text(self.results)}"
                f"{self.missing_text()}{self.errata_text()}")

    def errata_text(self) -> str:
        """Markdown sentences: which stored metrics of which runs are left out, and why."""
        present = {r.run_id for r in self.results}
        return "".join(f" **Erratum** ({len(set(e.runs) & present)} runs: {', '.join(sorted(set(e.runs) & present))}):"
                       f" {e.why} Left out of every table: {', '.join(e.metrics)}."
                       for e in self.errata if set(e.runs) & present)

    def missing_text(self) -> str:
        """Markdown sentence naming the declared runs no stored result fulfils, and why those that diverged did."""
        missing = [run_label(spec.labels) for spec in missing_runs(self.campaign, self.results)]
        failed = [f"{label} (**diverged**: {self.failures[label]})" for label in missing if label in self.failures]
        waiting = [label for label in missing if label not in self.failures]
        parts = ([f"not run yet: {', '.join(waiting) if len(waiting) <= MAX_NAMED else f'{len(waiting)} runs'}"]
                 if waiting else []) + ([f"failed: {'; '.join(failed)}"] if failed else [])
        return f" Missing runs, {'; '.join(parts)}." if parts else ""


def run_label(labels: dict[str, Any]) -> str:
    """`model seed k` of a run's labels (the name tables give it)."""
    return f"{labels.get('model')} seed {labels.get('seed')}"


def failures(store: Store, runs) -> dict[str, str]:
    """Why each declared run that diverged did (its failure record's reason), by run label."""
    return {run_label(spec.labels): record.reason for spec in runs
            if (record := store.failure(spec)) is not None}


def recipes_text(results: list[RunResult]) -> str:
    """Markdown sentence naming the runs of each training precision when a campaign mixes them (else empty)."""
    groups: dict[str, list[str]] = {}
    for r in results:
        groups.setdefault(recipe_name(r), []).append(run_label(r.labels))
    if len(groups) < 2:
        return ""
    parts = [f"{name}: {len(runs)} run(s)" if len(runs) > 4 else f"{name}: {', '.join(runs)}"
             for name, runs in sorted(groups.items(), key=lambda g: -len(g[1]))]
    return (" Trained with `precision=auto`, which resolves per CPU (bf16 + channels-last where bf16 is native, fp32 "
            "NCHW elsewhere; chapter 3 tests whether the two give equivalent GMSRF-Net Dice, for the other models "
            "it is assumed): " + "; ".join(parts) + ".")


def campaign(settings: BookProfile, name: str, *, run_missing: bool = False, only: str | None = None,
             results_dir: str | Path | None = None, work: str | Path | None = None) -> CampaignView:
    """A chapter's campaign: smoke runs it live into a temporary store; lite/full read `results/` and, with
    `run_missing=True`, first execute the runs still missing there (resuming interrupted ones)."""
    (declared,) = get_campaigns(settings, [name])
    if settings.name == "smoke":
        scratch = Path(tempfile.mkdtemp(prefix=f"polyp-book-{name}-"))
        results_dir, work = scratch / "results", Path(work or scratch / "work")
        run_missing = True
    results_dir = Path(results_dir or os.environ.get("POLYPLIB_RESULTS") or RESULTS_DIR)
    ctx = Context(results=str(results_dir), root=settings.data_root, work=str(work) if work else None,
                  device=settings.device, threads=settings.cpu_threads if settings.device == "cpu" else None)
    if run_missing:
        run_campaigns([declared], ctx, only=only, report=lambda _: None)
    store, runs = Store(results_dir, settings.name, name), select(declared, only)
    return CampaignView(settings, declared, store.results_for(runs), ctx.work_path, failures(store, runs))


def stored(profile: str, name: str, results_dir: str | Path | None = None) -> CampaignView:
    """The committed results of a campaign of a heavier profile (possibly none)."""
    settings = profile_settings(profile)
    (declared,) = get_campaigns(settings, [name])
    store = Store(Path(results_dir or RESULTS_DIR), profile, name)
    return CampaignView(settings, declared, store.results_for(declared.runs), failures=failures(store, declared.runs),
                        errata=store.errata())


def stored_views(name: str, exclude: str | None = None, results_dir: str | Path | None = None) -> list[CampaignView]:
    """The committed views of a campaign for every stored profile other than `exclude` (the chapter's own)."""
    return [stored(p, name, results_dir) for p in STORED_PROFILES if p != exclude]


def results_index(results_dir: str | Path | None = None) -> pd.DataFrame:
    """Every committed campaign: profile, campaign, runs present of declared, devices, training recipes, dates."""
    rows = []
    for profile in STORED_PROFILES:
        for declared in get_campaigns(profile):
            view = stored(profile, declared.name, results_dir)
            prov = [r.provenance for r in view.results]
            dates = sorted(p.date[:10] for p in prov)
            rows.append({"profile": profile, "campaign": declared.name, "runs": view.coverage(),
                         "device": ", ".join(sorted({str(p.device) for p in prov})) or "-",
                         "recipe": ", ".join(f"{name} ({n})" for name, n in
                                             Counter(recipe_name(r) for r in view.results).most_common()) or "-",
                         "dates": f"{dates[0]} to {dates[-1]}" if dates else "-"})
    return pd.DataFrame(rows)


def smoke_label(settings: BookProfile) -> None:
    """Display the label that marks the following outputs as this chapter's live run (and what the profile means)."""
    from IPython.display import Markdown, display

    display(Markdown(f"**Live run, profile `{settings.name}`** ({settings.description})."))


def first_result(view: CampaignView) -> RunResult:
    """The first stored run of a view (a chapter's example run), or a clear error when none is stored."""
    if not view.results:
        raise ConfigError(f"no stored result of campaign {view.campaign.name!r} for profile {view.profile!r}; execute "
                          "the chapter with run_missing=True (or `polyplib campaign run`) first")
    return view.results[0]
