"""A stored result must agree with itself before any table trusts it: its run id is the hash of its spec, its checksum
(when it has one) that of its content, every declared test set and prompt has an entry, and each entry's means are the
means of its per-image scores."""
from __future__ import annotations

import hashlib
import json
import math
from typing import Any

MEAN_TOL = 2e-5  # per-image scores are stored to 5 digits and means to 6: their means agree within 1e-5


def checksum(result: dict[str, Any]) -> str:
    """SHA-256 of a result's canonical JSON without its own `checksum` field."""
    body = {k: v for k, v in result.items() if k != "checksum"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _entry_problem(entry: dict[str, Any]) -> str | None:
    """Why one test entry disagrees with itself (None when it agrees)."""
    where = f"test {entry.get('key')!r} prompt {entry.get('prompt')!r}"
    means, scores = entry.get("means"), entry.get("per_image")
    if not isinstance(means, dict) or not isinstance(scores, dict) or not isinstance(scores.get("id"), list):
        return f"{where} lacks its means or per-image scores"
    bad = sorted(k for k, v in means.items() if not _number(v))
    if bad:
        return f"{where} has a mean {bad[0]} that is not a number ({means[bad[0]]!r})"
    if entry.get("n") != len(scores["id"]):
        return f"{where} has n {entry.get('n')!r} but {len(scores['id'])} per-image ids"
    for key, values in scores.items():
        if key == "id":
            continue
        if not isinstance(values, list) or len(values) != len(scores["id"]) or \
                not all(_number(v) or v is None for v in values):  # None: undefined there (HD95 of an empty mask)
            return f"{where} has per-image {key} scores that are not {len(scores['id'])} numbers"
        finite = [v for v in values if v is not None and not math.isnan(v)]
        mean = sum(finite) / len(finite) if finite else math.nan
        if key in means and not (abs(means[key] - mean) <= MEAN_TOL or (math.isnan(mean) and math.isnan(means[key]))):
            return f"{where} has mean {key} {means[key]} but its per-image scores average {mean:.6f}"
    return None


def inconsistency(result: dict[str, Any]) -> str | None:
    """Why a stored result (already known to hold the REQUIRED fields) disagrees with itself, or None."""
    from polyplib.campaigns.spec import RunSpec
    from polyplib.errors import ConfigError

    if "checksum" in result and result["checksum"] != checksum(result):
        return "its content does not match its checksum (edited after it was written)"
    try:
        spec = RunSpec.from_dict(result["spec"])
    except (ConfigError, KeyError, TypeError, ValueError) as err:
        return f"its spec is not a valid run spec ({err})"
    if spec.run_id != result["run_id"]:
        return f"its spec hashes to run id {spec.run_id}, not {result['run_id']} (the spec was changed)"
    tests = result["tests"]
    if not isinstance(tests, list) or not all(isinstance(e, dict) for e in tests):
        return "its tests are not a list of entries"
    prompts = [p["name"] for p in spec.prompts] or ["none"]
    declared = {(t["key"], p) for t in spec.tests for p in prompts}
    present = {(e.get("key"), e.get("prompt")) for e in tests}
    if declared - present:
        key, prompt = sorted(declared - present)[0]
        return f"it lacks test {key!r}{'' if prompt == 'none' else f' prompt {prompt!r}'} of its spec"
    for entry in tests:
        problem = _entry_problem(entry)
        if problem:
            return problem
    return None
