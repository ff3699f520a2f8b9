"""k-means clustering of rows by numeric features, or of assets by their return patterns."""

from __future__ import annotations

from typing import Any

from .base import ASSET_RETURNS, Param, Template, asset_params, finite, indented, number

CODE = '''\
# k-means clustering: the number of clusters chosen by silhouette score, a 2-D view from PCA
# and what sets each cluster apart.
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.metrics import silhouette_score
from sklearn.preprocessing import StandardScaler

from jupyter_analyst.runtime import save_metrics, save_table

$params

if cluster_assets:
''' + indented(ASSET_RETURNS) + '''\
    # Each asset is a point: its standardised returns over the period all assets share.
    common = asset_returns.dropna()
    points = ((common - common.mean()) / common.std()).T
    described = pd.DataFrame({"mean_return_pct": 100 * common.mean(),
                              "volatility_pct": 100 * common.std()})
else:
    features = $frame[columns].apply(pd.to_numeric, errors="coerce").dropna()
    if features.shape[1] > max_features:  # bounded: the most variable columns only
        features = features[features.var().nlargest(max_features).index]
    points = pd.DataFrame(StandardScaler().fit_transform(features), index=features.index)
    described = features

# k with the best silhouette (how much closer points are to their own cluster than to the
# next one: 1 is perfect, 0 overlapping).
candidates = range(min_k, min(max_k, len(points) - 1) + 1)
scores = {k: silhouette_score(points, KMeans(k, n_init=10, random_state=0).fit_predict(points))
          for k in candidates}
best_k = max(scores, key=scores.get)
labels = KMeans(best_k, n_init=10, random_state=0).fit_predict(points)

profile = described.groupby(labels).mean()
profile.insert(0, "cluster_size", np.bincount(labels))
profile.index.name = "cluster"
save_table(profile.round(3), "clusters")
members = pd.DataFrame({"cluster": labels}, index=points.index)
save_table(members, "cluster_members")

metrics = {"k": best_k, "silhouette": round(float(scores[best_k]), 3), "points": len(points)}
metrics.update({f"silhouette k={k}": round(float(s), 3) for k, s in scores.items()})
metrics.update({f"cluster {c} size": int(n) for c, n in profile["cluster_size"].items()})
if cluster_assets:
    metrics.update({f"cluster {c} members": ", ".join(map(str, members.index[labels == c]))
                    for c in profile.index})
save_metrics(metrics)

view = PCA(n_components=2).fit(points)
xy = view.transform(points)
fig, ax = plt.subplots(figsize=(8, 6))
ax.scatter(xy[:, 0], xy[:, 1], c=labels, cmap="tab10", s=60 if cluster_assets else 20)
if cluster_assets:
    for name, (x, y) in zip(points.index, xy):
        ax.annotate(str(name), (x, y), textcoords="offset points", xytext=(4, 4))
share = view.explained_variance_ratio_
ax.set_xlabel(f"first principal component ({share[0]:.0%} of the variance)")
ax.set_ylabel(f"second principal component ({share[1]:.0%})")
ax.set_title(f"k-means, k = {best_k} (silhouette {scores[best_k]:.2f})")

print(profile.round(3).to_string())
'''


def insights(metrics: dict[str, Any], bindings: dict[str, Any]) -> list[str]:
    found = []
    if finite(metrics, "k", "silhouette"):
        tried = [k for k in metrics if k.startswith("silhouette k=")]
        found.append(f"{number(metrics['k'])} clusters fit best of the {len(tried)} numbers "
                     f"tried: silhouette {number(metrics['silhouette'])} (1 is perfectly "
                     "separated, near 0 overlapping).")
    sizes = [(k.split()[1], v) for k, v in metrics.items()
             if k.startswith("cluster ") and k.endswith(" size")]
    if sizes:
        found.append("Cluster sizes: " + ", ".join(f"cluster {c}: {n}" for c, n in sizes) + ".")
    members = [f"{k.split()[1]}: {v}" for k, v in metrics.items() if k.endswith(" members")]
    if members:
        found.append("Members: " + "; ".join(members) + ".")
    return found


TEMPLATE = Template(
    name="clustering",
    description="k-means clustering (k by silhouette) of rows by numeric features or of "
                "assets by returns, a PCA view, cluster profiles.",
    example="Cluster the rows by {numeric} and the other numeric columns",
    params=(
        Param("cluster_assets", "choice", "True: cluster the assets (columns) by returns",
              "False", (True, False)),
        *asset_params(),
        Param("min_k", "int", "the smallest number of clusters tried", "2"),
        Param("max_k", "int", "the largest number of clusters tried", "6"),
        Param("max_features", "int", "rows are clustered on at most this many columns", "50"),
    ),
    code=CODE,
    insights=insights,
)
