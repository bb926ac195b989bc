"""Predictive coding against backprop on the same network, data and seed.

Trains a tanh MLP (the input, two hidden areas, a linear label area) once with
discriminative predictive coding (Whittington & Bogacz 2017: input and label
clamped, T relaxation steps, local Hebbian updates) and once with exact
backprop, from identical initial weights and the same batch order, and prints
the test accuracy of the feedforward sweep after every epoch.

    python studies/compare_pc_backprop.py                      # digits, offline
    python studies/compare_pc_backprop.py --data mnist --epochs 5 --hidden 256
"""

from __future__ import annotations

import argparse
import sys
import time

import cortexsim as cs
from cortexsim.data import load


def train(rule: cs.rules.Rule, args: argparse.Namespace, data: cs.data.Dataset) -> list[dict]:
    sizes = [data.x_train.shape[1], args.hidden, args.hidden, data.n_classes]
    spec = cs.HierarchySpec.from_sizes(sizes, activation="tanh", output_activation="linear")
    hierarchy = cs.build(spec, backend=args.backend, seed=args.seed)
    scheduler = cs.Scheduler(
        hierarchy, rule, cs.Adam(lr=args.lr), data.x_train, data.y_train,
        batch_size=args.batch_size, epochs=args.epochs, seed=args.seed,
        x_test=data.x_test, y_test=data.y_test,
    )
    started = time.perf_counter()

    def report(event: cs.scheduler.Event) -> None:
        m = event.metrics
        print(
            f"  {rule.name:<17} epoch {m['epoch']:>3}  train loss {m['train_loss']:.4f}  "
            f"test accuracy {m['test_accuracy']:.4f}  ({time.perf_counter() - started:.1f} s)",
            flush=True,
        )

    scheduler.attach("epoch_end", report, name="print epoch metrics")
    return scheduler.run()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="digits", help="digits (default), mnist or fashion-mnist")
    parser.add_argument("--data-dir", default=None, help="folder holding mnist/ and fashion-mnist/")
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    parser.add_argument("--steps", type=int, default=20, help="PC relaxation steps T")
    parser.add_argument("--step-size", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--backend", default="numpy")
    args = parser.parse_args(argv)
    try:
        data = load(args.data, data_dir=args.data_dir)
        rules = [
            cs.PredictiveCoding(inference=cs.Relaxation(steps=args.steps, step_size=args.step_size)),
            cs.Backprop(),
        ]
        print(
            f"{args.data}: {len(data.x_train)} train / {len(data.x_test)} test; "
            f"{data.x_train.shape[1]}-{args.hidden}-{args.hidden}-{data.n_classes} tanh, "
            f"Adam {args.lr}, batch {args.batch_size}, seed {args.seed}"
        )
        final = {rule.name: train(rule, args, data)[-1]["test_accuracy"] for rule in rules}
    except cs.CortexsimError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("final test accuracy: " + ", ".join(f"{k} {v:.4f}" for k, v in final.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
