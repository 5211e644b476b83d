"""manifoldwalk_jax: turn a JAX apply function, a parameter pytree, a loss and data into a Problem.

Three lines wrap a model::

    import manifoldwalk, manifoldwalk_jax
    problem = manifoldwalk_jax.from_apply(apply_fn, params, loss_fn, (x_train, y_train))
    result = manifoldwalk.walk(problem, problem.theta0)

A loss of the parameters and a batch of any structure (dicts, several inputs, a model that
computes its own loss) is wrapped with ``from_loss(loss_fn, params, data)``;
``from_apply(..., groups=ids)`` builds one k-constraint problem holding the mean loss of each of
k groups of examples (:class:`~manifoldwalk_jax.groups.JaxGroupsProblem`). See
:func:`from_apply`, :func:`from_loss` and ``docs/adapters.md`` (section "JAX").
"""

try:
    import jax  # noqa: F401
    import jax.flatten_util  # noqa: F401
except ImportError as err:  # pragma: no cover - exercised by a test that hides jax
    raise ImportError("manifoldwalk_jax needs JAX: pip install manifoldwalk[jax]") from err

from manifoldwalk_jax.batch import walk_batch
from manifoldwalk_jax.loop import CompiledProblem, compiled
from manifoldwalk_jax.loss_problem import JaxLossProblem, from_loss
from manifoldwalk_jax.problem import JaxProblem, from_apply

__all__ = [
    "CompiledProblem",
    "JaxLossProblem",
    "JaxProblem",
    "compiled",
    "from_apply",
    "from_loss",
    "walk_batch",
]
