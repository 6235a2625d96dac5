"""t-SNE speed: openTSNE (what the layer probe uses) against scikit-learn's TSNE on the same data, in
the same run, with the same perplexity, initialisation, exaggeration and iterations; quality is
printed beside the time so that speed is not bought with a worse embedding.

    python benchmarks/tsne.py                      # 5,000 x 512 Gaussian mixture, one thread each
    python benchmarks/tsne.py --n 2000 --n-jobs 2

Data: a stand-in for pooled layer features with cluster structure: ``clusters`` Gaussian clusters in
``dim`` dimensions (centres N(0, 1) per axis, within-cluster sd 0.7, so clusters overlap in part).
Both use learning_rate="auto" (the two libraries define the step 4x apart and their "auto" values
agree: scikit-learn N / (4 * 12), openTSNE N / 12), PCA initialisation, early exaggeration 12 for
250 iterations then 500 more. Quality: trustworthiness (scikit-learn, 10 neighbours), the share of
each point's 10 nearest neighbours kept in 2-D, and the leave-one-out 10-NN accuracy of the cluster
label in 2-D.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

EARLY_ITER, LATE_ITER, EXAGGERATION = 250, 500, 12.0


def mixture(n: int, dim: int, clusters: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points of ``clusters`` Gaussian clusters in ``dim`` dimensions and their cluster labels."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(clusters, size=n)
    centres = rng.normal(size=(clusters, dim))
    return (centres[labels] + 0.7 * rng.normal(size=(n, dim))).astype(np.float32), labels


def run_opentsne(x: np.ndarray, perplexity: float, seed: int, n_jobs: int) -> np.ndarray:
    from openTSNE import TSNE

    tsne = TSNE(n_components=2, perplexity=perplexity, initialization="pca", learning_rate="auto",
                early_exaggeration=EXAGGERATION, early_exaggeration_iter=EARLY_ITER, n_iter=LATE_ITER,
                random_state=seed, n_jobs=n_jobs)
    return np.asarray(tsne.fit(x))


def run_sklearn(x: np.ndarray, perplexity: float, seed: int, n_jobs: int) -> np.ndarray:
    from sklearn.manifold import TSNE

    tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", learning_rate="auto",
                early_exaggeration=EXAGGERATION, max_iter=EARLY_ITER + LATE_ITER, method="barnes_hut",
                random_state=seed, n_jobs=n_jobs)
    return tsne.fit_transform(x)


def quality(x: np.ndarray, y: np.ndarray, labels: np.ndarray, k: int = 10) -> dict[str, float]:
    """Trustworthiness, k-NN preservation and LOO k-NN label accuracy of embedding ``y`` of ``x``."""
    from sklearn.manifold import trustworthiness
    from sklearn.neighbors import NearestNeighbors

    high = NearestNeighbors(n_neighbors=k).fit(x).kneighbors(return_distance=False)
    low = NearestNeighbors(n_neighbors=k).fit(y).kneighbors(return_distance=False)
    kept = np.mean([len(np.intersect1d(a, b)) / k for a, b in zip(high, low)])
    votes = np.array([np.bincount(labels[row]).argmax() for row in low])
    return {
        "trustworthiness": float(trustworthiness(x, y, n_neighbors=k)),
        "knn_kept": float(kept),
        "knn_label_acc": float(np.mean(votes == labels)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=5000, help="points (default 5000)")
    parser.add_argument("--dim", type=int, default=512, help="feature dimensions (default 512)")
    parser.add_argument("--clusters", type=int, default=10, help="Gaussian clusters (default 10)")
    parser.add_argument("--perplexity", type=float, default=30.0, help="perplexity for both (default 30)")
    parser.add_argument("--n-jobs", type=int, default=1, help="threads for each library (default 1)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    x, labels = mixture(args.n, args.dim, args.clusters, args.seed)
    print(f"data: {args.n} x {args.dim}, {args.clusters} clusters; perplexity {args.perplexity:g}, "
          f"{EARLY_ITER}+{LATE_ITER} iterations, {args.n_jobs} thread(s)")
    times = {}
    for name, runner in (("openTSNE", run_opentsne), ("scikit-learn", run_sklearn)):
        start = time.perf_counter()
        embedding = runner(x, args.perplexity, args.seed, args.n_jobs)
        times[name] = time.perf_counter() - start
        scores = quality(x, embedding, labels)
        print(f"{name:<13} {times[name]:7.1f} s   " + "   ".join(f"{k} {v:.3f}" for k, v in scores.items()))
    print(f"time ratio scikit-learn / openTSNE: {times['scikit-learn'] / times['openTSNE']:.2f}x")


if __name__ == "__main__":
    main()
