"""A small synthetic training frame with a learnable label, for tests, benchmarks and smoke runs.

The real path builds frames with workbench.features; this one needs nothing but numpy, so a training
check does not depend on the feature stage. The label is logistic in two of the features (the others
are noise), so a model that learns gets a ROC-AUC well above 0.5 and one that does not, does not.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

SYNTHETIC_FEATURES = ("amount_z", "velocity", "is_night", "noise_a", "noise_b")


def synthetic_training_frame(n_rows: int, seed: int = 0, fraud_rate_shift: float = -3.5) -> pd.DataFrame:
    """``n_rows`` rows of SYNTHETIC_FEATURES and ``is_fraud`` (about 10-15 % positives by default)."""
    rng = np.random.default_rng(seed)
    amount_z = rng.normal(size=n_rows)
    velocity = rng.poisson(1.0, size=n_rows).astype(np.float64)
    is_night = (rng.random(n_rows) < 0.2).astype(np.int64)
    logit = fraud_rate_shift + 1.8 * amount_z + 0.9 * velocity + 1.0 * is_night
    label = (rng.random(n_rows) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int64)
    return pd.DataFrame({"amount_z": amount_z, "velocity": velocity, "is_night": is_night,
                         "noise_a": rng.normal(size=n_rows), "noise_b": rng.uniform(-1, 1, n_rows),
                         "is_fraud": label})
