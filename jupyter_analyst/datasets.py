"""Small data sets for examples and the offline demo.

- ``load("tips")``: real restaurant tips (244 rows; seaborn-data, BSD-3-Clause).
- ``load("prices")``: a synthetic daily price series, NOT market data: a seeded
  geometric Brownian motion (8% drift, 18% volatility a year, starting at 100) over
  the business days of 2020-2023, so it is the same on every machine.
"""

from __future__ import annotations

from importlib import resources

import numpy as np
import pandas as pd

from .errors import InputError

DATASETS = ("tips", "prices")


def load(name: str) -> pd.DataFrame:
    """A fresh copy of the data set ``name`` ("tips" or "prices")."""
    if name == "tips":
        with resources.files("jupyter_analyst.data").joinpath("tips.csv").open("rb") as f:
            return pd.read_csv(f)
    if name == "prices":
        return synthetic_prices()
    raise InputError(f"There is no bundled data set called {name!r}.",
                     f"Choose one of: {', '.join(DATASETS)}.")


def synthetic_prices(
    start: str = "2020-01-01",
    end: str = "2023-12-31",
    drift: float = 0.08,
    volatility: float = 0.18,
    seed: int = 6,
) -> pd.DataFrame:
    """Business-daily prices from a geometric Brownian motion with a fixed seed."""
    dates = pd.bdate_range(start, end, name="date")
    step = 1 / 252
    rng = np.random.default_rng(seed)
    shocks = rng.normal((drift - volatility**2 / 2) * step, volatility * np.sqrt(step), len(dates))
    prices = 100 * np.exp(np.cumsum(shocks))
    return pd.DataFrame({"date": dates, "price": prices.round(4)})
