"""A profile on the datasets a user has: the test sets as a setting (`--tests`), the Kvasir-SEG-only Polyp-SAM variant,
weights from scratch (`--from-scratch`), and what adding each missing dataset would add."""
from __future__ import annotations

import dataclasses
from typing import Any

from polyplib.campaigns.profiles import PROFILES, BookProfile
from polyplib.errors import ConfigError

TEST_CHOICES = ("all", "present")
# Polyp-SAM on Kvasir-SEG alone (no PraNet TrainDataset): the GMSRF 80/10/10 split of Kvasir-SEG, whose training split
# is also the cascade detector's, so no test image was seen by either; the paper trains on 900 Kvasir-SEG + 550
# CVC-ClinicDB images (PraNet's split)
KVASIR_ONLY_SAM = {"sam_train": "kvasir-seg", "sam_test_protocol": "gmsrf", "sam_train_protocol": None}
KVASIR_ONLY_LABEL = "Kvasir-SEG only (the paper: + CVC-ClinicDB)"


def is_present(key: str, root: str | None) -> bool:
    """Whether a book dataset key is under the data root (synthetic ones always are)."""
    from polyplib.data.registry import locate
    from polyplib.errors import DataError

    if key.startswith("synthpolyp"):
        return True
    try:
        locate(key, root)
    except DataError:
        return False
    return True


def parse_tests(choice: str | list[str] | tuple[str, ...] | None, settings: BookProfile,
                present: set[str] | None = None) -> tuple[str, ...]:
    """The test sets of `--tests` (`all`: the profile's; `present`: those of them under the data root; or a comma
    list of the profile's), in the profile's order."""
    known = PROFILES[settings.name].test_sets
    if choice is None or choice == "all":
        return known
    if choice == "present":
        chosen = [k for k in known if k in present] if present is not None else \
            [k for k in known if is_present(k, settings.data_root)]
        if not chosen:
            raise ConfigError(f"--tests present: none of the test sets of profile {settings.name!r} "
                              f"({', '.join(known)}) is under the data root; pass --root DIR")
        return tuple(chosen)
    names = [n.strip() for n in choice.split(",")] if isinstance(choice, str) else list(choice)
    wrong = [n for n in names if n not in known]
    if wrong or not names:
        raise ConfigError(f"--tests {','.join(names)}: {', '.join(wrong) or 'empty'} is not a test set of profile "
                          f"{settings.name!r}; choose all, present, or a comma list of {', '.join(known)}")
    return tuple(k for k in known if k in names)


def from_scratch(settings: BookProfile) -> BookProfile:
    """The profile with every pretrained weight replaced by random initialisation (labelled scratch everywhere)."""
    if settings.from_scratch:
        return settings
    gmsrf = {**settings.gmsrf_options, "pretrained": False}
    baselines = {name: {**opts, "encoder_weights": None} for name, opts in settings.baseline_options.items()}
    return dataclasses.replace(settings, gmsrf_options=gmsrf, baseline_options=baselines,
                               sam_options={**settings.sam_options, "allow_scratch": True}, from_scratch=True)


def configure(settings: BookProfile, tests: str | list[str] | tuple[str, ...] | None = None, scratch: bool = False,
              present: set[str] | None = None) -> BookProfile:
    """`settings` testing on `tests` (`parse_tests`); unless they are `all`, Polyp-SAM trains on Kvasir-SEG alone when
    the profile's PraNet training set is absent (`KVASIR_ONLY_SAM`); `scratch`: `from_scratch`."""
    changes: dict[str, Any] = {"test_sets": parse_tests(tests, settings, present)}
    if tests not in (None, "all"):
        have = (lambda key: key in present) if present is not None else \
            (lambda key: is_present(key, settings.data_root))
        if settings.sam_train == "pranet-train" and not have("pranet-train") and have("kvasir-seg"):
            changes.update(KVASIR_ONLY_SAM)
    settings = dataclasses.replace(settings, **changes)
    return from_scratch(settings) if scratch else settings


def runnable(settings: BookProfile, present: set[str]) -> dict[str, int]:
    """Runs per campaign of `settings` tested on the present test sets whose every dataset is in `present`."""
    from polyplib.campaigns.declared import campaigns

    chosen = configure(settings, "present", present=present) if set(settings.test_sets) & present else None
    if chosen is None:
        return {}
    return {name: sum(set(spec.datasets()) <= present for spec in c.runs) for name, c in campaigns(chosen).items()}


def gains(settings: BookProfile, present: set[str]) -> list[str]:
    """One line per dataset the profile uses that is absent: the test set and the runs it would add."""
    from polyplib.campaigns.declared import campaigns

    declared = campaigns(settings)
    used = dict.fromkeys(d for c in declared.values() for spec in c.runs for d in spec.datasets())
    now = runnable(settings, present)
    lines = []
    for key in (k for k in used if k not in present):
        parts = []
        if key in settings.test_sets:
            parts.append("a test set for every run")
        after = runnable(settings, present | {key})
        more = {name: n - now.get(name, 0) for name, n in after.items() if n > now.get(name, 0)}
        if more:
            parts.append(", ".join(f"{n} {name} run(s)" for name, n in more.items()) + f" trained on {key}")
        if key == "pranet-train":
            parts.append("Polyp-SAM on the paper's training set (900 Kvasir-SEG + 550 CVC-ClinicDB, PraNet's "
                         f"TrainDataset) instead of the {KVASIR_ONLY_LABEL} variant")
        lines.append(f"{key}: " + ("; ".join(parts) or "nothing runnable yet without the other missing datasets"))
    return lines
