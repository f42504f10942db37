"""scikit-learn's GridSearchCV over a local estimator and scorer, fitted on the cluster
through joblib's Dask backend. Needs scikit-learn: pip install 'shipit[examples]'.

    shipit run grid.py --samples 2000
"""

import argparse

from centroids import ShrunkCentroids, balanced_hits
from distributed import Client
from joblib import parallel_backend
from sklearn.datasets import make_classification
from sklearn.model_selection import GridSearchCV


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=2_000)
    options = parser.parse_args()
    X, y = make_classification(
        n_samples=options.samples, n_features=20, n_informative=6, n_classes=3, random_state=0
    )
    search = GridSearchCV(
        ShrunkCentroids(), {"shrink": [0.0, 0.2, 0.4, 0.6, 0.8]}, scoring=balanced_hits, cv=4
    )
    with Client(), parallel_backend("dask", scatter=[X, y]):
        search.fit(X, y)
    print(
        f"best shrink={search.best_params_['shrink']} score={search.best_score_:.3f} "
        f"({len(search.cv_results_['params'])} candidates x 4 folds)"
    )


if __name__ == "__main__":
    main()
