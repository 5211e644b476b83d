"""Phase-1 and weight-decay training for Keras 3 models (TensorFlow backend): Adam on minibatches
of L + λ·R.

The loop, its signature and its result match ``manifoldwalk_torch.paper.training`` and
``manifoldwalk_jax.paper.training``, and it shuffles identically for a given seed. It is a custom
loop (``tf.GradientTape`` inside a ``tf.function``) rather than ``model.fit`` so that R can include
the biases (``"l2"``, as the walk) and so that the per-epoch hooks and the shuffling are the same
as in the other frameworks; ``reg="l2-weights"`` gives the penalty of Keras'
``kernel_regularizer=L2(λ)``, the authors' baseline.

The optimiser is ``keras.optimizers.Adam(lr)`` (β = (0.9, 0.999), ε = 1e-7). Keras adds ε to
``sqrt(v)`` before bias correction (the "ε̂" form of Kingma & Ba), where PyTorch and the JAX
adapter add it to the bias-corrected ``sqrt(v̂)``; the two agree to a relative ~ε/sqrt(v̂), which
is invisible unless gradients are tiny.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from manifoldwalk._training_result import REGS as _REGS
from manifoldwalk._training_result import TrainResult, prepare_training, run_epochs

__all__ = ["TrainResult", "data_loss", "full_batch_loss", "penalty", "train"]


def data_loss(outputs: tf.Tensor, targets: tf.Tensor, task: str) -> tf.Tensor:
    """Return the mean data loss of a batch.

    Args:
        outputs: Logits ``(n, k)`` (classification) or predictions ``(n, 1)`` (regression).
        targets: Integer labels ``(n,)`` or values reshapeable to ``outputs.shape``.
        task: ``"classification"`` (mean cross-entropy on logits) or ``"regression"`` (mean
            squared error).

    Returns:
        A scalar tensor.
    """
    if task == "classification":
        return tf.reduce_mean(
            tf.nn.sparse_softmax_cross_entropy_with_logits(labels=targets, logits=outputs)
        )
    return tf.reduce_mean(tf.square(outputs - tf.reshape(targets, tf.shape(outputs))))


def _penalised(model: keras.Model, reg: str) -> list[Any]:
    """The trainable variables R covers. Raises ValueError for an unknown ``reg``."""
    if reg not in _REGS:
        raise ValueError(f"reg must be one of {_REGS}, got {reg!r}")
    variables = list(model.trainable_variables)
    if reg == "l2-weights":
        variables = [v for v in variables if len(v.shape) >= 2]
    return variables


def penalty(model: keras.Model, reg: str = "l2") -> tf.Tensor:
    """Return the regulariser R of ``model``'s trainable variables.

    Args:
        model: A built Keras model.
        reg: ``"l2"``: squared L2 norm of every trainable variable, biases included (the walk's
            R); ``"l2-weights"``: only rank >= 2 variables (kernels; Keras' ``L2`` kernel
            regulariser, the authors' baseline).

    Returns:
        A scalar tensor (differentiable under a ``tf.GradientTape``).

    Raises:
        ValueError: If ``reg`` is unknown.
    """
    variables = _penalised(model, reg)
    return tf.add_n([tf.reduce_sum(tf.square(v)) for v in variables])


def _check_backend() -> None:
    """Raise RuntimeError unless Keras runs on TensorFlow."""
    if keras.backend.backend() != "tensorflow":
        raise RuntimeError(
            "manifoldwalk_tf needs Keras' TensorFlow backend, but KERAS_BACKEND is "
            f"{keras.backend.backend()!r}; use manifoldwalk_jax or manifoldwalk_torch instead"
        )


def train(
    model: keras.Model,
    data: Any,
    *,
    task: str | None = None,
    epochs: int,
    batch_size: int = 32,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    reg: str = "l2",
    seed: int = 0,
    callback: Callable[[int, keras.Model, float], bool | None] | None = None,
    progress: Callable[[int, int, float], None] | None = None,
) -> TrainResult:
    """Train a Keras model in place with Adam on minibatches of ``L + weight_decay · R``.

    Phase 1 of the paper is ``weight_decay=0`` for 100 epochs; the weight-decay baseline is
    ``weight_decay=λ`` for 200 or 500. The training set is reshuffled every epoch by
    ``numpy.random.default_rng(seed)`` (the same order as the PyTorch and JAX loops); the last
    minibatch of an epoch may be smaller. Inputs are cast to the model's variable dtype. The
    model's outputs must be logits (classification) or ``(n, 1)`` predictions (regression); any
    ``add_loss`` losses or layer regularisers of the model are not included.

    Args:
        model: A built Keras model, e.g. from :mod:`manifoldwalk_tf.paper.nets`.
        data: A :class:`manifoldwalk.datasets.Dataset` (its ``x_train``, ``y_train`` and
            ``task`` are used) or an ``(x, y)`` pair of arrays.
        task: ``"classification"`` (mean cross-entropy on logits, integer labels) or
            ``"regression"`` (mean squared error); defaults to ``data.task``.
        epochs: Passes over the training set.
        batch_size: Minibatch size.
        lr: Adam's learning rate.
        weight_decay: λ, the weight of the penalty R in the objective.
        reg: R: ``"l2"`` (every variable, biases included; as the walk) or ``"l2-weights"``
            (rank >= 2 variables only; as the authors' baseline).
        seed: Seeds the shuffling.
        callback: Called after every epoch as ``callback(epoch, model, epoch_loss)`` with
            ``epoch`` counted from 1; returning ``True`` stops training.
        progress: Called after every epoch as ``progress(epoch, epochs, epoch_loss)``.

    Returns:
        A :class:`TrainResult`.

    Raises:
        ValueError: For an unknown task or reg, negative epochs or weight decay, a batch size
            below 1, an empty training set, or inputs and targets of different lengths.
        RuntimeError: If Keras does not run on the TensorFlow backend.
    """
    _check_backend()
    x_np, y_np, task = prepare_training(data, task, epochs, batch_size, weight_decay, reg)
    penalised = _penalised(model, reg)
    variables = list(model.trainable_variables)
    dtype = tf.as_dtype(variables[0].dtype)
    x = tf.constant(x_np, dtype=dtype)
    y = tf.constant(y_np, dtype=tf.int32 if task == "classification" else dtype)
    wd = tf.constant(weight_decay, dtype=dtype)
    optimizer = keras.optimizers.Adam(learning_rate=lr, beta_1=0.9, beta_2=0.999, epsilon=1e-7)
    optimizer.build(variables)

    @tf.function(reduce_retracing=True)
    def step(idx: tf.Tensor) -> tf.Tensor:
        xb, yb = tf.gather(x, idx), tf.gather(y, idx)
        with tf.GradientTape() as tape:
            loss = data_loss(model(xb, training=True), yb, task)
            objective = loss
            if weight_decay:
                r = tf.add_n([tf.reduce_sum(tf.square(v)) for v in penalised])
                objective = loss + wd * r
        grads = tape.gradient(objective, variables)
        optimizer.apply_gradients(zip(grads, variables, strict=True))
        return loss * tf.cast(tf.shape(idx)[0], loss.dtype)

    result = TrainResult(model=model, n_train=len(x_np))
    run_epochs(
        result,
        epochs=epochs,
        batch_size=batch_size,
        seed=seed,
        progress=progress,
        callback=callback,
        order=lambda perm: perm.astype(np.int32),
        step=lambda idx: step(tf.constant(idx)),
        current=lambda: model,
    )
    result.final_loss = full_batch_loss(model, x_np, y_np, task)
    return result


def full_batch_loss(model: keras.Model, x: Any, y: Any, task: str, *, chunk: int = 1024) -> float:
    """Return the mean data loss of ``model`` over all of ``(x, y)``, evaluated in chunks.

    Args:
        model: A built Keras model.
        x: Inputs (cast to the model's variable dtype).
        y: Integer labels (classification) or values (regression).
        task: ``"classification"`` or ``"regression"``.
        chunk: Examples per forward pass.

    Returns:
        The mean loss as a Python float.
    """
    dtype = tf.as_dtype(model.trainable_variables[0].dtype)
    x = np.asarray(x)
    y = np.asarray(y)
    total = 0.0
    for lo in range(0, len(x), chunk):
        xb = tf.constant(x[lo : lo + chunk], dtype=dtype)
        yb = tf.constant(y[lo : lo + chunk], dtype=tf.int32 if task == "classification" else dtype)
        total += float(data_loss(model(xb, training=False), yb, task)) * len(xb)
    return total / len(x)
