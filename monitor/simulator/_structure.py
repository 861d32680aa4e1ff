"""The fixed shape of a simulated service: regime centres, spreads, correlations, seasons.

Everything here follows from the seed, the options and the feature names only, so two
simulators built alike produce the same telemetry.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from monitor.simulator._options import SimulatorOptions
from monitor.simulator._profiles import feature_profile

__all__ = ["TAG_INSTANCE", "TAG_INSTANT", "TAG_WINDOW", "Structure", "build_structure"]

# Tags that keep the random streams of the structure, windows and instants apart.
TAG_STRUCTURE, TAG_WINDOW, TAG_INSTANCE, TAG_INSTANT = 1, 2, 3, 4
_LEVEL_SPREAD = 1.2  # regimes' latent levels spread over [-spread, spread] per feature

FloatArray = NDArray[np.float64]


@dataclass(frozen=True, eq=False)
class Structure:
    """The per-service constants of the latent model (k regimes, d features)."""

    bounded: NDArray[np.bool_]  # (d,) ratios (logistic) rather than levels (exp)
    center: FloatArray  # (k, d) latent medians of the regimes
    sigma: FloatArray  # (k, d) latent spread within each regime
    rho: FloatArray  # (d,) correlation of each feature with the row's load
    indep: FloatArray  # (d,) sqrt(1 - rho²), the feature's own share of the noise
    season_weight: FloatArray  # (d,) how much the daily cycle moves each feature
    season_phase: float  # phase of the daily cycle of the levels
    regime_phase: FloatArray  # (k,) phase of the daily cycle of each regime's share
    log_share: FloatArray  # (regimes,) log of the initial regimes' base shares


def build_structure(features: Sequence[str], options: SimulatorOptions, n_new: int) -> Structure:
    """The structure of a service with ``options.regimes + n_new`` regimes.

    Parameters
    ----------
    features : sequence of str, length d
    options : SimulatorOptions
        Valid options (seed, regimes, noise are read).
    n_new : int
        Regimes that new_cluster events add after the initial ones.
    """
    d = len(features)
    r0 = options.regimes
    k = r0 + n_new
    rng = np.random.default_rng(np.random.SeedSequence([TAG_STRUCTURE, options.seed]))
    profiles = [feature_profile(f) for f in features]
    base = np.array([p.level for p in profiles], dtype=np.float64)
    # Each feature gets evenly spaced levels dealt to the regimes in a random order,
    # so that regimes are apart in every feature without any pair colliding. Features
    # of one group (the latency percentiles) share the deal, so that p99 stays above p50.
    levels = np.linspace(-_LEVEL_SPREAD, _LEVEL_SPREAD, r0) if r0 > 1 else np.zeros(1)
    offsets = np.empty((k, d))
    dealt: dict[str, FloatArray] = {}
    for j, profile in enumerate(profiles):
        if profile.group not in dealt:
            dealt[profile.group] = rng.permutation(levels)
        offsets[:r0, j] = dealt[profile.group] + rng.uniform(-0.05, 0.05, r0)
    # New regimes appear outside the range of the existing ones.
    far = rng.uniform(1.5, 2.0, (k - r0, d)) * rng.choice([-1.0, 1.0], (k - r0, d))
    offsets[r0:] = far
    # ...or, placed "between", at the centre of the initial regimes. The far draws above
    # are made either way, so that every later draw (and every row) stays the same.
    placements = [e.placement for e in options.events if e.kind == "new_cluster"]
    for j, placement in enumerate(placements[: k - r0]):
        if placement == "between":
            offsets[r0 + j] = offsets[:r0].mean(axis=0)
    # The draws below come in this order; changing it would change every simulated row.
    sigma = options.noise * rng.uniform(0.08, 0.2, (k, d))
    rho = rng.uniform(0.3, 0.7, d)
    season_weight = rng.uniform(0.5, 1.0, d)
    season_phase = float(rng.uniform(0.0, 2 * math.pi))
    return Structure(
        bounded=np.array([p.bounded for p in profiles], dtype=bool),
        center=base[None, :] + offsets,
        sigma=sigma,
        rho=rho,
        indep=np.sqrt(1.0 - rho**2),
        season_weight=season_weight,
        season_phase=season_phase,
        regime_phase=season_phase + 2 * math.pi * np.arange(k) / max(k, 1),
        log_share=np.log(1.0 + rng.uniform(0.0, 1.0, r0)),
    )
