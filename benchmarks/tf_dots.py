"""TensorFlow's compiled walk with its vector inner products as blocks, sums or dots (not a test).

The walk step takes up to six inner products of θ-sized vectors. Inside an XLA-compiled
``tf.function`` the TensorFlow namespace (``manifoldwalk_tf._namespace``) writes them as sums of
products in blocks of 32 entries, then of the blocks' sums ("blocks"), which measured faster
than ``reduce_sum(a * b)`` ("sums"), which XLA:CPU turns into the product written out in full and a
tree of windowed sums over it; ``tnp.matmul`` of two vectors ("dots") becomes an XLA dot, 1.8×
slower on this CPU. This times, in one process, interleaved round by round, the floor (K
value-and-gradient evaluations in one XLA ``tf.while_loop``) and one compiled chunk of K walk
steps per scheme with each form (the namespace's ``matmul`` swapped while the chunk is traced),
on MNIST-FF (1000 random examples, float32), and prints per step the median and the paired ratio
over the floor.

    python benchmarks/tf_dots.py [--threads 1] [--reps 20] [--k 48] [--schemes paper default]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "adapters"), str(ROOT / "benchmarks")]

from adapter_overhead import chunked_walk, random_data, set_threads, time_interleaved  # noqa: E402


def _plain_sum(a, b):
    """The "sums" form of the namespace's ``matmul``: vectors as ``reduce_sum(a * b)``."""
    import tensorflow as tf
    import tensorflow.experimental.numpy as tnp

    if a.shape.rank == 1 and b.shape.rank == 1:
        return tf.reduce_sum(a * b)
    return tnp.matmul(a, b)


def main(argv: list[str] | None = None) -> int:
    """Time the floor and each scheme's chunk with each form; print the table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, help="intra-op threads (set before TF is imported)")
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--k", type=int, default=48, help="steps per chunk")
    ap.add_argument("--schemes", nargs="+", default=["paper", "default", "compensated"])
    args = ap.parse_args(argv)
    if args.threads:
        set_threads(args.threads)
    import manifoldwalk_tf
    import tensorflow as tf
    import tensorflow.experimental.numpy as tnp
    from manifoldwalk_tf import _namespace
    from manifoldwalk_tf import paper as backend
    from manifoldwalk_tf.paper.training import data_loss
    from perf import chunk_table, tf_floor

    k = args.k
    backend.configure(device="cpu", threads=args.threads)

    def problem():
        model = backend.build_net("ff", (784,), 10, seed=0, dtype="float32")
        x, y = random_data(0, (784,))
        loss = lambda out, t: data_loss(out, t, "classification")  # noqa: E731
        return manifoldwalk_tf.from_model(model, loss, (x, y), compile=True)

    fns = {"floor": tf_floor(problem(), k)}
    namespace = _namespace.TensorFlowNamespace
    blocks = namespace.__dict__["matmul"]
    forms = {
        "blocks": blocks,
        "sums": staticmethod(_plain_sum),
        "dots": staticmethod(tnp.matmul),
    }
    for scheme in args.schemes:
        for form, matmul in forms.items():
            namespace.matmul = matmul
            try:
                chunk = chunked_walk(problem(), k, scheme)
                chunk()  # traced and compiled now, with this form
            finally:
                namespace.matmul = blocks
            fns[f"{scheme}, {form}"] = chunk
    times = time_interleaved(fns, args.reps, warmup=1)
    print(f"TensorFlow {tf.__version__}, MNIST-FF, K = {k}, {args.reps} rounds")
    print(chunk_table(times, k))
    return 0


if __name__ == "__main__":
    sys.exit(main())
