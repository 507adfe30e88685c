"""The digits MLP's host-side arithmetic: its initial weights, the bias column, softmax
and the loss.

The network
-----------
``64 -> hidden -> 10``, ReLU, softmax cross-entropy, minibatch SGD (no momentum) whose
learning rate decays along a half cosine from ``learning_rate`` to
``learning_rate_final`` over the run's steps (:meth:`qforge.sim.training.config.TrainConfig.learning_rate_at`).
Biases are folded into the weights: a constant 1 is appended to each layer's input, so
``W1`` is ``65 x hidden`` and ``W2`` is ``(hidden + 1) x 10``, and the biases go through the
emulated GEMMs and the weight format like every other weight. Inputs are the digits'
pixel values divided by 16 (so in ``[0, 1]``). One step on a batch ``X`` (``n x 65``)::

    Z1 = X @ W1            H = [relu(Z1), 1]      Z2 = H @ W2          (forward)
    dZ2 = (softmax(Z2) - onehot) / n                                    (host, float)
    dW2 = H^T @ dZ2        dH = dZ2 @ W2^T        dZ1 = dH[:, :hidden] * (Z1 > 0)
    dW1 = X^T @ dZ1                                                     (backward)
    W <- Q_w(W - lr * dW)                                               (update)

The five GEMMs are *emulated hardware GEMMs* (:func:`qforge.sim.training.emulated_gemm.emulated_matmul`); softmax, the
ReLU and its mask, the loss and the update arithmetic run on the host in float64
(float32 for the float32 reference). ``dX = dZ1 @ W1^T`` is not needed (X is the data).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["with_ones", "log_softmax", "loss_accuracy", "initial_weights"]


def with_ones(x: np.ndarray) -> np.ndarray:
    """``x`` with a column of ones appended (the folded biases' input).

    >>> with_ones(np.array([[2.0], [3.0]])).tolist()
    [[2.0, 1.0], [3.0, 1.0]]
    """
    return np.concatenate([x, np.ones((x.shape[0], 1), dtype=x.dtype)], axis=1)


def log_softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise ``log(softmax(z))``, computed after subtracting each row's maximum.

    >>> np.exp(log_softmax(np.array([[0.0, np.log(3.0)]]))).round(6).tolist()
    [[0.25, 0.75]]
    """
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def loss_accuracy(logits, labels) -> tuple[float, float]:
    """Mean cross-entropy of ``logits`` against integer ``labels``, and the accuracy of
    their argmax.

    >>> loss_accuracy(np.array([[0.0, 0.0], [5.0, 0.0]]), np.array([1, 1]))[1]
    0.0
    """
    log_p = log_softmax(logits)
    loss = -float(log_p[np.arange(len(labels)), labels].mean())
    return loss, float((logits.argmax(axis=1) == labels).mean())


def initial_weights(hidden: int, seed: int, inputs: int = 64,
                    classes: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """He-uniform weights (biases 0, folded as the last row) from ``default_rng(seed)``:
    ``W1`` is ``(inputs + 1) x hidden``, ``W2`` ``(hidden + 1) x classes`` (the digits:
    64 inputs, 10 classes; another dataset's features and classes)."""
    rng = np.random.default_rng(seed)
    w1 = rng.uniform(-1, 1, (inputs + 1, hidden)) * math.sqrt(6 / inputs)
    w2 = rng.uniform(-1, 1, (hidden + 1, classes)) * math.sqrt(6 / hidden)
    w1[-1] = 0
    w2[-1] = 0
    return w1, w2
