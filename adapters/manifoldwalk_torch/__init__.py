"""manifoldwalk_torch: turn a PyTorch ``nn.Module``, a loss and training data into a Problem.

Three lines wrap a model::

    import manifoldwalk, manifoldwalk_torch
    problem = manifoldwalk_torch.from_model(model, torch.nn.CrossEntropyLoss(), (x, y))
    result = manifoldwalk.walk(problem, problem.theta0)

θ is one flat tensor on the model's device; the loss and its gradient are computed and
flattened there. See :func:`from_model` and ``docs/adapters.md``; :func:`from_loss` takes a
loss of the model and one batch of any structure instead (``lambda m, b: m(**b).loss`` for a
Hugging Face model on dict batches); :func:`walk_batch` walks several seeds of one model at
once (``torch.func.vmap``); ``from_model(..., groups=ids)`` builds one k-constraint problem
holding the mean loss of each of k groups of examples
(:class:`~manifoldwalk_torch.groups.TorchGroupsProblem`).
"""

try:
    import torch  # noqa: F401
except ImportError as err:  # exercised by a test that hides torch
    raise ImportError("manifoldwalk_torch needs PyTorch: pip install manifoldwalk[torch]") from err

from manifoldwalk_torch._namespace import register as _register_namespace
from manifoldwalk_torch.batch import walk_batch
from manifoldwalk_torch.loss_problem import TorchLossProblem, from_loss
from manifoldwalk_torch.problem import TorchProblem, from_model

_register_namespace()  # the core's namespace(x) for torch tensors: fast paths, same values

__all__ = ["TorchLossProblem", "TorchProblem", "from_loss", "from_model", "walk_batch"]
