"""Two pre-training variants against each other, from two `objectives.py` results files: paired by fine-tuning seed.

`objectives.py` compares each pre-trained start with random weights. Whether one pre-training
variant beats another (co-occurrence embeddings against random ones, say) is a different question
with its own interval: seed i of both results files fine-tunes on the same training subset, in the
same order, with the same head initialisation (the benchmark's seeds are fixed), so the per-seed
differences of the pre-trained scores pair exactly as a gain over random init does. Each setup
(corpus and label fraction) present in both files gets one row: both means, the difference
(candidate - baseline) and its 95% Student t interval, and "helped"/"hurt" only where the interval
excludes zero. The random-init scores of both files are compared too: with the same tokenizer
and seeds they should be equal, which checks that the pairing holds. Two budgets pair the same
way (the pre-training budget changes nothing about fine-tuning's seeds), so the same table says
whether pre-training longer helped; each side then names its budget.

Nothing is trained here: this reads the two files and writes a third.

    python benchmarks/compare_objectives.py --baseline benchmarks/results/objectives-korean-30m-auto.json \\
        --candidate benchmarks/results/objectives-korean-30m-cooccurrence.json \\
        --results benchmarks/results/objectives-korean-30m-cooccurrence-vs-default.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import write_results  # noqa: E402

from prefine.metrics.intervals import mean_and_spread, paired_gain  # noqa: E402


def describe(result: dict, with_budget: bool) -> str:
    model = result.get("chosen_preset", result["preset"])
    budget = f", {result['budget']}" if with_budget else ""
    return f"{result['variant']} ({model}, vocabulary {result.get('model_vocab_size', result['vocab_size']):,}{budget})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", type=Path, required=True, help="objectives.py results file of the variant compared against")
    parser.add_argument("--candidate", type=Path, required=True, help="objectives.py results file of the variant tried")
    parser.add_argument("--results", type=Path, default=None, help="write the table here (a results file for render_results)")
    args = parser.parse_args()
    files = {}
    for name in ("baseline", "candidate"):
        path = getattr(args, name)
        if not path.is_file():
            sys.exit(f"--{name} {path}: no such file; pass a results file benchmarks/objectives.py wrote")
        files[name] = json.loads(path.read_text(encoding="utf-8"))
        if files[name].get("kind") != "objectives":
            sys.exit(f"--{name} {path}: not an objectives.py results file (kind {files[name].get('kind')!r})")
    baseline = {result["setup"]: result for result in files["baseline"]["results"]}
    candidate = {result["setup"]: result for result in files["candidate"]["results"]}
    setups = [setup for setup in baseline if setup in candidate]
    if not setups:
        sys.exit("the two results files share no setup (corpus and label fraction); compare runs of the same corpora")
    budgets = [files["baseline"]["budget"], files["candidate"]["budget"]]
    budgets_differ = budgets[0] != budgets[1]
    budgets_text = f"{budgets[0]} and {budgets[1]} budgets" if budgets_differ else f"a {budgets[0]} budget"

    header = ["setup (score)", "baseline", "candidate", "baseline %", "candidate %", "difference (points)", "95% interval", "verdict",
              "random init % (baseline / candidate)"]  # fmt: skip
    rows, record = [], []
    for setup in setups:
        ours, theirs = candidate[setup], baseline[setup]
        if len(ours["pretrained"]) != len(theirs["pretrained"]):
            sys.exit(f"{setup}: {len(theirs['pretrained'])} seeds against {len(ours['pretrained'])}; run both with the same --seeds")
        difference = paired_gain(ours["pretrained"], theirs["pretrained"])
        low, high = difference.low, difference.high
        pair = [mean_and_spread([100 * value for value in result["pretrained"]]) for result in (theirs, ours)]
        scratch = [100 * mean_and_spread(result["scratch"])[0] for result in (theirs, ours)]
        rows.append(
            [
                f"{setup} ({ours['metric'].replace('_', ' ')})",
                describe(theirs, budgets_differ),
                describe(ours, budgets_differ),
                f"{pair[0][0]:.1f} ± {pair[0][1]:.1f}",
                f"{pair[1][0]:.1f} ± {pair[1][1]:.1f}",
                f"{100 * difference.mean:+.1f}",
                "-" if low is None else f"{100 * low:+.1f} to {100 * high:+.1f}",
                difference.verdict,
                f"{scratch[0]:.1f} / {scratch[1]:.1f}",
            ]
        )
        record.append({"setup": setup, "difference": difference.mean, "low": low, "high": high, "verdict": difference.verdict})
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")
    conditions = (
        f"Pre-trained scores of two objectives.py runs at {budgets_text}, paired by fine-tuning seed "
        f"({len(next(iter(candidate.values()))['pretrained'])} seeds); baseline {args.baseline.name} (commit "
        f"{files['baseline']['commit']}), candidate {args.candidate.name} (commit {files['candidate']['commit']}); machine and "
        "commands in those files"
    )
    write_results(args.results, "compare_objectives", header, rows, {"comparisons": record}, threads=0, conditions=conditions)
    print(json.dumps({"benchmark": "compare_objectives", "comparisons": record}))


if __name__ == "__main__":
    main()
