"""Small data sets for examples and the offline demo.

- ``load("tips")``: real restaurant tips (244 rows; seaborn-data, BSD-3-Clause).
- ``load("stocks")``: real month-start closing prices of AAPL, AMZN, GOOG, IBM and MSFT,
  2000-2010, in long format (``symbol``, ``date``, ``price``; from vega_datasets, MIT);
  ``stock_prices()`` pivots them wide, one column per symbol.
- ``load("prices")``: a synthetic daily price series, NOT market data: a seeded
  geometric Brownian motion (8% drift, 18% volatility a year, starting at 100) over
  the business days of 2020-2023, so it is the same on every machine.
"""

from __future__ import annotations

from importlib import resources

import numpy as np
import pandas as pd

from .errors import InputError

DATASETS = ("tips", "stocks", "prices")


def load(name: str) -> pd.DataFrame:
    """A fresh copy of the data set ``name`` ("tips", "stocks" or "prices")."""
    if name in ("tips", "stocks"):
        with resources.files("jupyter_analyst.data").joinpath(f"{name}.csv").open("rb") as f:
            data = pd.read_csv(f)
        if name == "stocks":  # dates are written "Jan 1 2000"
            data["date"] = pd.to_datetime(data["date"], format="%b %d %Y")
        return data
    if name == "prices":
        return synthetic_prices()
    raise InputError(f"There is no bundled data set called {name!r}.",
                     f"Choose one of: {', '.join(DATASETS)}.")


def stock_prices(symbols: list[str] | None = None) -> pd.DataFrame:
    """The bundled stock prices wide: a date index and one price column per symbol.

    GOOG has no prices before its 2004 listing, so its column starts with missing values;
    ``dropna()`` gives the common period of all five.
    """
    prices = load("stocks").pivot(index="date", columns="symbol", values="price")
    prices.columns.name = None
    if symbols is not None:
        unknown = sorted(set(symbols) - set(prices.columns))
        if unknown:
            raise InputError(f"The bundled stocks have no symbol {', '.join(unknown)}.",
                             f"Choose among: {', '.join(prices.columns)}.")
        prices = prices[list(symbols)]
    return prices


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
