"""The thresholds a run compares its SLIs with: the configured ones, calibrated at its size.

``fixed``: the configured values. ``calibrated`` (the default): each calibrated SLI's
null threshold at the run's row count replaces the values that guard it. ``auto``: the
configured value, unless sampling noise at this size would cross it more often than the
false-alarm rate allows, in which case the calibrated value (the larger of the two for
SLIs that alarm when high, the smaller for those that alarm when low). A critical level
stays at least at its SLI's calibrated value in both. Where the null is undefined at the
run's size, the SLI is not a drift signal: its thresholds are left out (nothing can
alarm on them) and the run says so.
"""

from __future__ import annotations

from collections.abc import Mapping

from monitor import slis as S
from monitor.core.calibration import threshold_at
from monitor.records import NullTable

__all__ = ["run_thresholds"]


def run_thresholds(
    fixed: Mapping[str, float],
    null: NullTable | None,
    mode: str,
    n: int,
    ceilings: Mapping[str, float] | None = None,
    usual: int | None = None,
) -> tuple[dict[str, float], tuple[str, ...]]:
    """(thresholds for a window of ``n`` rows, the SLIs that are not drift signals there).

    ``ceilings``: the largest value an SLI can take in this window where it is lower than
    its ``most`` (a PSI against the window's own reference, empty clusters below k);
    ``usual``: the reference windows' usual rows (``threshold_at``)."""
    out = dict(fixed)
    if mode == "fixed" or null is None:
        return out, ()
    calibrated = threshold_at(null, n, usual)
    undefined: list[str] = []
    for key, value in calibrated.items():
        sli = S.SLIS[key]
        # A threshold the SLI cannot pass (an outlier ratio above 1, from a reference of a
        # few distinct values; a PSI above the one of a window all in one bin) is no drift
        # signal either: said, not silently never fired.
        bounds = [b for b in (sli.most, (ceilings or {}).get(key)) if b is not None]
        beyond = value is not None and bool(bounds) and value >= min(bounds)
        if value is None or beyond:
            undefined.append(key)
            for tkey in sli.thresholds:
                out.pop(tkey, None)
            continue
        for tkey in sli.thresholds:
            out[tkey] = _merge(S.THRESHOLDS[tkey], sli.direction, mode, out[tkey], value)
    return out, tuple(undefined)


def _merge(t: S.Threshold, direction: str, mode: str, configured: float, value: float) -> float:
    looser = max if direction != S.BELOW else min
    if t.calibration == "at_least" or mode == "auto":
        return float(looser(configured, value))
    return float(value) if t.calibration == "replace" else configured
