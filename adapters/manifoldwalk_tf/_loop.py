"""K walk steps per host synchronisation on TensorFlow: the engine's chunk in ``tf.while_loop``.

:meth:`TFProblem.compile_loop` hands the engine's :class:`~manifoldwalk._chunked.DeviceLoop` to
:func:`chunk_runner`, which compiles one chunk (the step, the stop rules, the history and
trajectory buffers) into a single XLA ``tf.function``. Calling a ``tf.function`` costs a few
microseconds per argument, and the walk state has 23 of them: one call per K steps instead of
one per step is what makes the compiled walk cheap on a CPU.
"""

from __future__ import annotations

from collections.abc import Callable

import tensorflow as tf

from manifoldwalk.adapter_api import Carry, DeviceLoop


def put_row(buffer: tf.Tensor, i: tf.Tensor, due: tf.Tensor, make_row: Callable) -> tf.Tensor:
    """``buffer`` with row ``i`` replaced by ``make_row()`` where ``due`` holds (a
    :data:`~manifoldwalk._chunked.Put`): the row, a history record of several passes over θ,
    is computed only when due (``tf.cond``, an XLA conditional), not at every step."""

    def write() -> tf.Tensor:
        row = tf.cast(make_row(), buffer.dtype)
        return tf.tensor_scatter_nd_update(buffer, tf.reshape(i, (1, 1)), row[None, :])

    return tf.cond(due, write, lambda: buffer)


def chunk_runner(loop: DeviceLoop) -> Callable[[Carry], Carry]:
    """One chunk of ``loop`` (at most K steps) as an XLA-compiled function ``carry -> carry``.

    Args:
        loop: the engine's device loop.

    Returns:
        The compiled chunk; the walk's host side calls it once per synchronisation.
    """

    def while_loop(cond: Callable, body: Callable, init: Carry) -> Carry:
        (final,) = tf.while_loop(cond, lambda c: (body(c),), (init,), maximum_iterations=loop.steps)
        return final

    @tf.function(jit_compile=True, autograph=False)  # branch-free: nothing to convert
    def chunk(carry: Carry) -> Carry:
        return loop.run(carry, put_row, while_loop)

    return chunk
