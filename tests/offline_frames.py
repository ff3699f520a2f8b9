"""The real data sets the offline tests ask about, by the names the phrasing corpus uses."""

from __future__ import annotations

from functools import cache

import pandas as pd
from conftest import read_seaborn

from jupyter_analyst.datasets import load, stock_prices

SEABORN = ("tips", "penguins", "planets", "exercise")


@cache
def _frame(name: str) -> pd.DataFrame:
    if name in SEABORN:
        frame = read_seaborn(name)
        return frame.drop(columns="Unnamed: 0") if "Unnamed: 0" in frame else frame
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
