"""Fine-tuning learning rates for one pre-training run: is the default rate why a gain is small?

`prefine finetune` picks its peak learning rate from the model's width (1e-3 for a 128-wide tiny,
`prefine/recipes/common.py`). `benchmarks/objectives.py` fine-tunes both starts, pre-trained and
random, at that rate. A gain measured there can hide a rate that suits one start and not the
other. This benchmark fine-tunes one finished pre-training run (an `objectives.py` run folder, or
any prefine run) at each rate of `--rates`, from its weights and from random weights of the same
shape, for `--seeds` seeds, on one of `objectives.py`'s labelled setups, exactly as
`objectives.py` does (same dev split, same seeds, checkpoint chosen on the setup's own metric).

Nothing reported here chose anything: for each start, the rate is chosen on the mean score of the
dev split that also chooses checkpoints, and only that rate's test scores enter the gain. The
table also shows every rate's test mean, so a reader can see what the choice cost or gained.

    python benchmarks/finetune_learning_rates.py --init /tmp/grid/work30s2a/runs/korean-comments-30m-auto-vauto-default \\
        --setup "korean-comments 100%" --rates 3e-4,9.3e-4,3e-3 --threads 1 \\
        --results benchmarks/results/finetune-rates-korean-100.json
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

import prefine  # noqa: F401  (before torch: it sets the OpenMP wait policy torch reads when it loads)

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import markdown_table, print_json, write_results  # noqa: E402
from objectives import LabelledSetup, finetune_with, prepare_builtin, prepare_korean_comments, prepare_sst2  # noqa: E402

from prefine.metrics.intervals import paired_gain  # noqa: E402


def setups(args) -> dict[str, LabelledSetup]:
    """The labelled setups of the corpus `--setup` names (only that corpus's files are written)."""
    corpus = args.setup.split(" ")[0]
    if corpus == "korean-comments" and args.korean_comments.is_dir():
        prepared = prepare_korean_comments(args.work_dir, args.korean_comments)[1]
    elif corpus == "sst2" and args.sst2.is_dir():
        prepared = prepare_sst2(args.work_dir, args.sst2, args.sst2_labels)[1]
    else:
        prepared = prepare_builtin(args.work_dir)[1]
    return {setup.name: setup for setup in prepared}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--init", type=Path, required=True, help="a finished pre-training run folder")
    parser.add_argument("--setup", required=True, help='an objectives.py labelled setup, e.g. "korean-comments 10%%" or "builtin 100%%"')
    parser.add_argument("--rates", required=True, help="comma-separated peak learning rates, e.g. 3e-4,1e-3")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--min-steps", type=int, default=300)
    parser.add_argument("--sst2", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data" / "sst2")
    parser.add_argument("--korean-comments", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data" / "korean-comments")
    parser.add_argument("--sst2-labels", type=int, default=2000)
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/prefine-rates"))
    parser.add_argument("--results", type=Path, default=None, help="also write the results here (benchmarks/results/NAME.json)")
    args = parser.parse_args()
    try:
        rates = [float(rate) for rate in args.rates.split(",") if rate]
    except ValueError:
        sys.exit(f"--rates {args.rates}: give numbers separated by commas, e.g. 3e-4,1e-3")
    if not rates or any(rate <= 0 for rate in rates):
        sys.exit(f"--rates {args.rates}: give one or more positive learning rates")
    if not (args.init / "run.json").is_file():
        sys.exit(f"--init {args.init} is not a prefine run folder (no run.json); pass a finished pre-training run")
    if args.seeds < 2:
        sys.exit("--seeds must be at least 2 for an interval")
    if args.setup.split(" ")[0] not in ("builtin", "sst2", "korean-comments"):
        sys.exit(f'--setup {args.setup!r}: name a setup of builtin, sst2 or korean-comments, e.g. "builtin 10%"')
    args.work_dir.mkdir(parents=True, exist_ok=True)
    known = setups(args)
    if args.setup not in known:
        sys.exit(f"--setup {args.setup!r} is not one of: {', '.join(known)} (sst2 and korean-comments need their data folders)")
    setup = known[args.setup]
    finetune_dir = args.work_dir / f"ft-{os.getpid()}"

    # scores[start][rate] = ([selection per seed], [test per seed])
    scores: dict[str, dict[float, tuple[list[float], list[float]]]] = {"pre-trained": {}, "random init": {}}
    for rate in rates:
        for start, from_scratch in (("pre-trained", False), ("random init", True)):
            selection, test = [], []
            for seed in range(args.seeds):
                print(f"--- {setup.name}: {start}, learning rate {rate:g}, seed {seed}", flush=True)
                outcome = finetune_with(args.init, setup, from_scratch, seed, finetune_dir, args, learning_rate=rate)
                selection.append(float(outcome.selection_metrics[setup.metric]))
                test.append(float(outcome.metrics[setup.metric]))
            scores[start][rate] = (selection, test)

    chosen = {start: max(rates, key=lambda rate: statistics.mean(by_rate[rate][0])) for start, by_rate in scores.items()}
    header = ["learning rate", *(f"{start}: dev split / test %" for start in scores), "gain at this rate", "95% interval"]
    rows = []
    for rate in rates:
        cells = []
        for start in scores:
            selection, test = scores[start][rate]
            mark = " (chosen)" if chosen[start] == rate else ""
            cells.append(f"{statistics.mean(selection) * 100:.1f} / {statistics.mean(test) * 100:.1f}{mark}")
        gain = paired_gain(scores["pre-trained"][rate][1], scores["random init"][rate][1])
        rows.append([f"{rate:g}", *cells, f"{gain.mean * 100:+.1f}", f"{gain.low * 100:+.1f} to {gain.high * 100:+.1f}"])
    gain = paired_gain(scores["pre-trained"][chosen["pre-trained"]][1], scores["random init"][chosen["random init"]][1])
    summary_line = (
        f"each start at the rate its dev split chose (pre-trained {chosen['pre-trained']:g}, random init {chosen['random init']:g}): "
        f"gain {gain.mean * 100:+.1f} points, 95% interval {gain.low * 100:+.1f} to {gain.high * 100:+.1f} ({gain.verdict})"
    )
    conditions = (
        f"{setup.name} ({setup.metric.replace('_', ' ')}), init {args.init.name}, {args.seeds} seeds of at least {args.min_steps} steps, "
        f"{args.threads} threads; a dev split of the training labels chooses checkpoints and rates, the test set chooses nothing"
    )
    print(f"\n{conditions}")
    print(markdown_table(header, rows))
    print(summary_line)
    record = {
        "benchmark": "finetune_learning_rates",
        "setup": setup.name,
        "metric": setup.metric,
        "init": str(args.init),
        "seeds": args.seeds,
        "rates": rates,
        "scores": {
            start: {f"{rate:g}": {"selection": selection, "test": test} for rate, (selection, test) in by_rate.items()}
            for start, by_rate in scores.items()
        },
        "chosen": {start: rate for start, rate in chosen.items()},
        "gain_at_chosen_rates": {"mean": gain.mean, "low": gain.low, "high": gain.high, "verdict": gain.verdict},
    }
    write_results(args.results, "finetune_learning_rates", header, rows, record, args.threads, conditions=conditions, notes=[summary_line])
    print_json(record)


if __name__ == "__main__":
    main()
