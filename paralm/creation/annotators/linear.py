"""Small numpy linear models for annotators fitted on a corpus: standardiser, softmax regression, ridge.

Deterministic (full-batch, fixed iterations, no random init) so that the same training split always
gives the same annotator, which keeps annotation reruns reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Standardizer:
    """Per-feature mean/std from training rows; constant features get std 1."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray) -> Standardizer:
        std = x.std(axis=0)
        return cls(x.mean(axis=0), np.where(std > 1e-9, std, 1.0))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return (x - self.mean) / self.std


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


@dataclass
class SoftmaxRegression:
    """Multinomial logistic regression: (N, F) -> (N, C) probabilities.

    Args:
        weight: (F, C) weights.
        bias: (C,) biases.
    """

    weight: np.ndarray
    bias: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray, n_classes: int, l2: float = 1e-2, steps: int = 500,
            lr: float = 0.5) -> SoftmaxRegression:
        """Full-batch gradient descent on mean cross-entropy + l2/2 * |W|^2; x should be standardised."""
        n, f = x.shape
        onehot = np.eye(n_classes)[y]  # (N, C)
        w, b = np.zeros((f, n_classes)), np.log(onehot.mean(0) + 1e-3)
        for _ in range(steps):
            grad = (softmax(x @ w + b) - onehot) / n  # (N, C)
            w -= lr * (x.T @ grad + l2 * w)
            b -= lr * grad.sum(0)
        return cls(w, b)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return softmax(x @ self.weight + self.bias)


@dataclass
class Ridge:
    """Closed-form ridge regression (N, F) -> (N,), intercept unpenalised."""

    weight: np.ndarray
    bias: float

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray, l2: float = 1.0) -> Ridge:
        mu = y.mean()
        w = np.linalg.solve(x.T @ x + l2 * np.eye(x.shape[1]), x.T @ (y - mu))
        return cls(w, float(mu))

    def predict(self, x: np.ndarray) -> np.ndarray:
        return x @ self.weight + self.bias
