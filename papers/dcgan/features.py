"""§5.1: the discriminator as a feature extractor for CIFAR-10 classification.

"We use the discriminator's convolutional features from all layers, maxpooling each layers
representation to produce a 4 x 4 spatial grid. These features are then flattened and concatenated
... and then a regularized linear L2-SVM classifier is trained on top of them." Our D's three
convolution blocks (after their LeakyReLU) give 16x16, 8x8 and 4x4 maps, pooled to 4x4 each:
16 * (ndf + 2 ndf + 4 ndf) features (7,168 for ndf = 64, 14,336 for ndf = 128). The L2-SVM is a linear
classifier with the squared hinge loss and an L2 penalty, one-vs-rest, on standardised features,
trained by SGD; its regularisation is chosen on a held-out part of the training set, then it is refit
on all training images and scored once on the test set.
"""

from __future__ import annotations

import time

import keras
import numpy as np


def feature_extractor(discriminator) -> keras.Model:
    blocks = [la.output for la in discriminator.layers if isinstance(la, keras.layers.LeakyReLU)]
    pooled = []
    for out in blocks:
        size = out.shape[1]
        if size % 4:
            raise ValueError(f"a {size}x{size} feature map cannot be max-pooled to a 4x4 grid")
        x = keras.layers.MaxPooling2D(size // 4)(out) if size > 4 else out
        pooled.append(keras.layers.Flatten()(x))
    return keras.Model(discriminator.input, keras.layers.Concatenate()(pooled), name="d_features")


def features(extractor: keras.Model, x: np.ndarray, batch_size: int = 500) -> np.ndarray:
    return np.concatenate([keras.ops.convert_to_numpy(extractor(x[i:i + batch_size], training=False))
                           for i in range(0, len(x), batch_size)]).astype(np.float32)


def svm_accuracy(f_train, y_train, f_test, y_test, alphas=(1e-7, 1e-6, 1e-5, 1e-4, 1e-3), epochs: int = 20,
                 val_size: int = 5000, seed: int = 0, log=print) -> dict:
    """Test accuracy of a linear L2-SVM (squared hinge loss, L2 penalty `alpha`, one-vs-rest) on
    standardised features. `alpha` is picked by accuracy on `val_size` held-out training images
    (stratified); the SVM is then refit on all training images and scored once on the test set.

    Trained by SGD for a fixed number of `epochs` (scikit-learn's `SGDClassifier`): the same objective
    as `LinearSVC`, whose exact solvers were far too slow for 50,000 images on the 2-core CPU (README,
    Deviations)."""
    from sklearn.linear_model import SGDClassifier
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    def svm(alpha):
        return make_pipeline(StandardScaler(), SGDClassifier(loss="squared_hinge", penalty="l2", alpha=alpha,
                                                             max_iter=epochs, tol=None, random_state=seed,
                                                             n_jobs=-1))

    start = time.perf_counter()
    fit_idx, val_idx = train_test_split(np.arange(len(f_train)), test_size=val_size, stratify=y_train,
                                        random_state=seed)
    search = {}
    for alpha in alphas:
        model = svm(alpha).fit(f_train[fit_idx], y_train[fit_idx])
        search[str(alpha)] = float(model.score(f_train[val_idx], y_train[val_idx]))
        log(f"  L2-SVM alpha = {alpha:g}: held-out accuracy {100 * search[str(alpha)]:.2f} % "
            f"({time.perf_counter() - start:.0f} s)")
    best = max(alphas, key=lambda a: search[str(a)])
    at_edge = len(alphas) > 1 and best in (min(alphas), max(alphas))
    if at_edge:
        log(f"  note: the chosen alpha {best:g} is at the edge of the grid; a wider grid may do better")
    accuracy = float(svm(best).fit(f_train, y_train).score(f_test, y_test))
    return {"accuracy": accuracy, "alpha": best, "val_accuracy_by_alpha": search, "alpha_at_grid_edge": at_edge,
            "epochs": epochs, "features": int(f_train.shape[1]), "train": len(f_train), "validation": val_size,
            "test": len(f_test),
            "time_s": round(time.perf_counter() - start, 1)}
