"""Gradient evaluations each scheme needs on the analytic suite (not a timed test).

For the circle (the paper's Fig. 1, from (0, 1)) and random ellipsoids at level 1
(dimension 2–20, SPD A with eigenvalues in [1, 100], random c, random start on the
level set) it walks with each named scheme (and, with ``--candidates``, a grid of
predictor step-size rules with the Newton corrector, the search that picked the
default) and prints, per problem family, the median loss-and-gradient evaluations,
the worst distance to the exact solution, and the stop reasons.

    python benchmarks/analytic_schemes.py [--problems 20] [--candidates]
"""

from __future__ import annotations

import argparse
import collections
import time

import numpy as np

import manifoldwalk as mw
from manifoldwalk.problems import Circle, Quadric


def random_ellipsoid(rng: np.random.Generator, dim: int) -> Quadric:
    """A random SPD quadric with eigenvalues in [1, 100] and a random objective."""
    q, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
    a = q @ np.diag(rng.uniform(1.0, 100.0, dim)) @ q.T
    return Quadric(0.5 * (a + a.T), None, rng.standard_normal(dim))


def suite(n_problems: int, seed: int = 0) -> dict[str, list[tuple[Quadric, np.ndarray]]]:
    """Problem families: the circle, and ellipsoids of dimension 2, 5 and 20."""
    rng = np.random.default_rng(seed)
    families = {"circle": [(Circle(), np.array([0.0, 1.0]))]}
    for dim in (2, 5, 20):
        rows = []
        for _ in range(n_problems):
            p = random_ellipsoid(rng, dim)
            rows.append((p, p.point_on_level(rng.standard_normal(dim))))
        families[f"ellipsoid-{dim}d"] = rows
    return families


def candidates() -> dict[str, dict]:
    """Newton-corrector variants of the predictor's angle rule (the default's search grid)."""
    out = {}
    for thr in (1.0, 5.0, 15.0):
        for grow, shrink in ((1.1, 0.1), (1.5, 0.5), (2.0, 0.25)):
            rule = mw.AngleRule(thr, grow, shrink, eta_init=1e-3, eta_min=1e-8, eta_max=1.0)
            out[f"newton thr={thr:g} x{grow:g}/x{shrink:g}"] = {
                "scheme": "default",
                "predictor_step": rule,
            }
    return out


def run(configs: dict[str, dict], families, max_steps: int) -> None:
    """Walk every problem with every configuration and print one line per pair."""
    print(
        f"{'family':<15} {'configuration':<32} {'median evals':>12} {'max evals':>9} "
        f"{'worst |x-x*|':>12} {'time s':>7}  stop reasons"
    )
    for fam, problems in families.items():
        for name, options in configs.items():
            overrides = dict(options)  # the scheme's name and get_scheme's overrides
            scheme = mw.get_scheme(overrides.pop("scheme"), **overrides, max_corrector_steps=10_000)
            evals, errors, reasons = [], [], collections.Counter()
            start = time.perf_counter()
            for problem, x0 in problems:
                r = mw.walk(
                    problem,
                    x0.copy(),
                    scheme=scheme,
                    stop=mw.Stop(max_steps=max_steps),
                    record=mw.Record(every=10**6),
                )
                evals.append(r.n_grad_evals)
                errors.append(float(np.linalg.norm(np.asarray(r.theta) - problem.solution(1.0))))
                reasons[r.stop_reason] += 1
            print(
                f"{fam:<15} {name:<32} {np.median(evals):>12.0f} {max(evals):>9d} "
                f"{max(errors):>12.2e} {time.perf_counter() - start:>7.2f}  {dict(reasons)}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=20, help="ellipsoids per dimension")
    parser.add_argument("--max-steps", type=int, default=50_000)
    parser.add_argument(
        "--candidates", action="store_true", help="also run the default's search grid"
    )
    args = parser.parse_args()
    configs = {name: {"scheme": name} for name in ("default", "compensated", "paper", "authors")}
    configs["paper + newton corrector"] = {"scheme": "paper", "corrector": "newton"}
    if args.candidates:
        configs.update(candidates())
    run(configs, suite(args.problems), args.max_steps)


if __name__ == "__main__":
    main()
