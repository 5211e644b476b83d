"""manifoldwalk_tf: turn a Keras 3 model (TensorFlow backend), a loss and data into a Problem.

Three lines wrap a model::

    import manifoldwalk, manifoldwalk_tf
    problem = manifoldwalk_tf.from_model(model, loss_fn, (x_train, y_train))
    result = manifoldwalk.walk(problem, problem.theta0)

Keras must run on the TensorFlow backend. Importing this package sets ``KERAS_BACKEND`` to
``"tensorflow"`` when it is unset, which only helps if Keras was not imported yet: set
``KERAS_BACKEND=tensorflow`` in the environment (or import this package before Keras) when
another backend is configured. A loss of the model and a batch of any structure (dicts,
several inputs, a model that computes its own loss) is wrapped with
``from_loss(model, loss_fn, data)``; ``from_model(..., groups=ids)`` builds one k-constraint
problem holding the mean loss of each of k groups of examples
(:class:`~manifoldwalk_tf.groups.TFGroupsProblem`). See :func:`from_model`, :func:`from_loss`
and ``docs/adapters.md`` (section "Keras / TensorFlow").
"""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

try:
    import keras  # noqa: F401
    import tensorflow  # noqa: F401
except ImportError as err:  # pragma: no cover - exercised by a test that hides tensorflow
    raise ImportError(
        "manifoldwalk_tf needs TensorFlow and Keras 3: pip install manifoldwalk[tensorflow]"
    ) from err

from manifoldwalk_tf.loss_problem import TFLossProblem, from_loss
from manifoldwalk_tf.problem import TFProblem, from_model

__all__ = ["TFLossProblem", "TFProblem", "from_loss", "from_model"]
