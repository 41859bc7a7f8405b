"""Distances between two corpora in an embedding space: MAUVE and the Fréchet distance.

**MAUVE** (Pillutla et al., NeurIPS 2021, "MAUVE: Measuring the Gap Between Neural Text and
Human Text using Divergence Frontiers"), implemented here from the paper: both sets of
embeddings are reduced by PCA (keeping 90% of the variance), quantised together by k-means into
k = n/10 clusters, and each corpus becomes a histogram P, Q over the clusters. For mixtures
R_λ = λP + (1−λ)Q the divergence curve is the set of points
(exp(−c·KL(Q‖R_λ)), exp(−c·KL(P‖R_λ))); MAUVE is the area under it (scaling c = 5, the
paper's default), closed at (0, 1) and (1, 0). It is 1 for identical histograms and tends to 0
as the supports separate. (The ``mauve-text`` package is GPL-3.0, which this Apache-2.0 project
does not take on; this implementation follows the paper's definitions.)

**Fréchet distance** (the FID formula on sentence embeddings): the squared distance between two
Gaussians fitted to the embeddings, ‖μ₁−μ₂‖² + Tr(Σ₁ + Σ₂ − 2(Σ₁Σ₂)^½). 0 for identical sets.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "divergence_curve",
    "frechet_distance",
    "mauve",
    "mauve_from_histograms",
    "quantise",
]

Vectors = NDArray[np.float64]

MAUVE_SCALING = 5.0
MAUVE_LAMBDAS = 25


def _kl(p: Vectors, q: Vectors) -> float:
    """KL(p‖q) in nats; terms with p = 0 contribute nothing (q > 0 wherever p > 0 here)."""
    mask = p > 0
    return float(np.sum(p[mask] * np.log(p[mask] / q[mask])))


def divergence_curve(
    p: Vectors, q: Vectors, *, scaling: float = MAUVE_SCALING, num: int = MAUVE_LAMBDAS
) -> list[tuple[float, float]]:
    """The divergence frontier's points, sorted by x, with the end points (0, 1) and (1, 0)."""
    points = [(0.0, 1.0), (1.0, 0.0)]
    for lam in np.linspace(1e-6, 1 - 1e-6, num):
        r = lam * p + (1 - lam) * q
        points.append((math.exp(-scaling * _kl(q, r)), math.exp(-scaling * _kl(p, r))))
    return sorted(points)


def mauve_from_histograms(
    p: Vectors, q: Vectors, *, scaling: float = MAUVE_SCALING, num: int = MAUVE_LAMBDAS
) -> float:
    """Area under the divergence curve of two histograms over the same bins."""
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    p, q = p / p.sum(), q / q.sum()
    curve = divergence_curve(p, q, scaling=scaling, num=num)
    area = 0.0
    for (x0, y0), (x1, y1) in itertools.pairwise(curve):
        area += (x1 - x0) * (y0 + y1) / 2
    return min(1.0, max(0.0, area))


def quantise(
    p_features: Vectors,
    q_features: Vectors,
    *,
    clusters: int | None = None,
    explained_variance: float = 0.9,
    seed: int = 0,
) -> tuple[Vectors, Vectors]:
    """Cluster both sets of embeddings together; return each set's counts per cluster.

    Args:
        p_features: The reference corpus' embeddings (e.g. training records), one per row.
        q_features: The other corpus' embeddings.
        clusters: k-means clusters; by default a tenth of all points (at least 2, at most 500).
        explained_variance: PCA keeps this share of the variance before clustering.
        seed: k-means initialisation (the quantisation, not a privacy mechanism).
    """
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA

    data = np.vstack([p_features, q_features])
    n = data.shape[0]
    k = clusters if clusters is not None else max(2, min(500, n // 10))
    k = max(1, min(k, n))
    if data.shape[1] > 1 and n > 2:
        components = min(data.shape)
        pca = PCA(n_components=components, svd_solver="full", random_state=seed).fit(data)
        cumulative = np.cumsum(pca.explained_variance_ratio_)
        keep = int(np.searchsorted(cumulative, explained_variance) + 1)
        data = pca.transform(data)[:, : max(1, min(keep, components))]
    labels = KMeans(n_clusters=k, n_init=5, max_iter=500, random_state=seed).fit_predict(data)
    p_hist = np.bincount(labels[: len(p_features)], minlength=k).astype(np.float64)
    q_hist = np.bincount(labels[len(p_features) :], minlength=k).astype(np.float64)
    return p_hist, q_hist


def mauve(p_features: Vectors, q_features: Vectors, **kwargs: Any) -> float:
    """MAUVE between two sets of embeddings (``kwargs`` as :func:`quantise` takes them)."""
    return mauve_from_histograms(*quantise(p_features, q_features, **kwargs))


def frechet_distance(a: Vectors, b: Vectors) -> float:
    """Fréchet distance between Gaussians fitted to two sets of embeddings (rows)."""
    from scipy import linalg

    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    cov_a = np.atleast_2d(np.cov(a, rowvar=False))
    cov_b = np.atleast_2d(np.cov(b, rowvar=False))
    root, _ = linalg.sqrtm(cov_a @ cov_b, disp=False)
    if not np.isfinite(root).all():
        # A singular product (fewer points than dimensions): regularise, as FID code does.
        eps = np.eye(cov_a.shape[0]) * 1e-6
        root, _ = linalg.sqrtm((cov_a + eps) @ (cov_b + eps), disp=False)
    root = np.real(root)
    diff = mu_a - mu_b
    value = float(diff @ diff + np.trace(cov_a) + np.trace(cov_b) - 2 * np.trace(root))
    return max(0.0, value)
