"""One rank of the time-budget test under torchrun, started by test_time_budget.py.

Each rank runs on its own fake clock: rank 0's moves one second per batch, rank 1's never moves.
Only if rank 0's clock decides for every rank do both stop at the same step and set the same
learning rates (DDP keeps weights equal only while every rank applies the same rate). Each rank
writes what it saw to RUN_DIR-rank{R}.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from prefine.training import init_distributed, train
from tests.training.test_time_budget import ClockedTask, FakeClock, config, model


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--run-dir", type=Path, required=True)
    parser.add_argument("--max-time", required=True)
    args = parser.parse_args()

    context = init_distributed("cpu")
    clock = FakeClock(now=1000.0 * (context.rank + 1))
    task = ClockedTask(clock, batch_seconds=1.0 if context.rank == 0 else 0.0)
    trained = model()
    result = train(trained, task, config(max_time=args.max_time, device="cpu"), args.run_dir, {}, context, clock=clock)
    report = {
        "step": result.step,
        "stopped_at_deadline": result.stopped_at_deadline,
        "tokens_seen": result.tokens_seen,
        "weights": [value for parameter in trained.parameters() for value in parameter.detach().flatten().tolist()],
    }
    Path(f"{args.run_dir}-rank{context.rank}.json").write_text(json.dumps(report), encoding="utf-8")
    # No destroy_process_group here, as in distributed_worker.py: destroying gloo's group while the
    # other rank is still leaving its last collective intermittently aborted a rank at exit
    # ("terminate called without an active exception").


if __name__ == "__main__":
    main()
