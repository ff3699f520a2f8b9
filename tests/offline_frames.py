"""The real data sets the offline tests ask about, by the names the phrasing corpus uses."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pandas as pd
from conftest import read_seaborn

from jupyter_analyst.datasets import load, stock_prices

SEABORN = ("tips", "penguins", "planets", "exercise")
# Frames copied from scikit-learn, statsmodels and plotly (tests/data/heldout/README.md), read
# back the way an analyst loads each: the dated ones with their dates as the index, except the
# weekly stocks, whose dates stay a column as plotly gives them.
HELDOUT = Path(__file__).parent / "data" / "heldout"
DATED_INDEX = ("macrodata", "co2")


@cache
def _frame(name: str) -> pd.DataFrame:
    if name in SEABORN:
        frame = read_seaborn(name)
        return frame.drop(columns="Unnamed: 0") if "Unnamed: 0" in frame else frame
    if name in DATED_INDEX:
        return pd.read_csv(HELDOUT / f"{name}.csv", index_col="date", parse_dates=True)
    if name == "weekly_stocks":
        return pd.read_csv(HELDOUT / f"{name}.csv", parse_dates=["date"])
    if (HELDOUT / f"{name}.csv").exists():
        return pd.read_csv(HELDOUT / f"{name}.csv")
    if name == "stocks":
        return load("stocks")
    if name == "closes":
        return stock_prices()
    if name == "fund":
        # A fund holding one share each of AAPL, IBM and MSFT, against an equal-weight
        # index of the four stocks with prices for the whole period (base 100).
        prices = stock_prices(["AAPL", "AMZN", "IBM", "MSFT"])
        return pd.DataFrame({
            "portfolio_value": prices[["AAPL", "IBM", "MSFT"]].sum(axis=1),
            "benchmark": 100 * (prices / prices.iloc[0]).mean(axis=1),
        })
    raise KeyError(name)


def frame(name: str) -> pd.DataFrame:
    """A fresh copy, so a test cannot change what the next one sees."""
    return _frame(name).copy()
