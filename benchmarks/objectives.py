"""Downstream accuracy per minute of pre-training: objectives and small-budget recipe changes.

The question a user with a CPU and a few hours asks is not "how fast is a step" but "does
pre-training on my text, for the minutes I can spend, make my classifier better than starting
from random weights?". This benchmark answers it the way a user would find out:

1. For each recipe variant (an objective, or a change to the pre-training recipe), pre-train
   the same preset for the same wall-clock budget (`--max-time`) on each unlabeled corpus.
2. Fine-tune each resulting run with prefine's default fine-tuning recipe (3 epochs but at
   least `--min-steps`, 300 as `prefine finetune` does), on each labelled setup, for several
   seeds; and fine-tune the same architecture from random weights with the same seeds. Each
   fine-tune chooses its checkpoint on a fixed dev split of its training labels and is scored
   once on the setup's test set (`prefine finetune --test` without --eval), so no reported
   number comes from data that chose anything.
3. Print downstream accuracy (mean and spread over seeds), the gain over random init with its
   95% interval paired over seeds, held-out MLM accuracy and pre-training tokens/s per variant,
   and a final JSON line; `--results FILE` also writes that JSON (benchmarks/results/, from which
   scripts/render_results.py renders the published tables).

Corpora and labelled setups:
- `builtin`: the built-in Python-docs corpus; the built-in docstring -> package task at 10% and
  100% of its labels (pre-training never read a test docstring, a near-copy or a sentence of one).
- `sst2`: SST-2's 67k training sentences (text only) as the corpus of short documents; 2,000
  of its labels (`--sst2-labels`) for fine-tuning (a dev split of them chooses checkpoints),
  scored on SST-2's dev set, which chooses nothing. Needs `--sst2 DIR` with
  train.tsv and dev.tsv (../shared/data/sst2 on the project's machines; never committed).
- `korean-comments`: Korean news comments (kocohub/korean-hate-speech): the 33,893 unlabelled
  comments plus the 7,896 training comments' text as the corpus; the 3-class `hate` label
  (none/offensive/hate) at 10% and 100% of the training labels, scored by macro F1 on the
  published dev set (471 comments), which chooses nothing. Needs `--korean-comments DIR`
  (../shared/data/korean-comments on the project's machines; never committed).

The model and vocabulary are a grid too (`--presets tiny,mini --vocab-sizes 8000,30522`; `auto` for
either is what `prefine pretrain --max-time` chooses when the user names neither): each
(preset, vocabulary) pair pre-trains every variant for the same budget, and gets its own
random-init baseline of the same shape, so the table answers "for this corpus and these minutes,
which size and vocabulary fine-tune best?".

    python benchmarks/objectives.py --budget 15m --corpora builtin --variants default --seeds 3 \\
        --results benchmarks/results/objectives-builtin-15m.json
    python benchmarks/objectives.py --budget 15m --variants default,mlm+nsp,seq128 --seeds 3
    python benchmarks/objectives.py --budget 45m --corpora builtin --variants mlm,electra --reuse
    python benchmarks/objectives.py --budget 15m --corpora korean-comments --presets tiny,mini \
        --vocab-sizes 8000,30522 --variants default --seeds 3

Variants are defined in VARIANTS below: each is a set of flags on top of `prefine pretrain`'s
defaults, so "default" always measures what a user who changes nothing gets.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import random
import shutil
import statistics
import sys
import time
from pathlib import Path

import prefine  # noqa: F401  (before torch: it sets the OpenMP wait policy torch reads when it loads)

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import invoked_command, markdown_table, print_json, source_commit  # noqa: E402

from prefine.checkpoint import METRICS_FILE  # noqa: E402
from prefine.corpus import CorpusConfig  # noqa: E402
from prefine.errors import PrefineError  # noqa: E402
from prefine.machine import describe_machine  # noqa: E402
from prefine.metrics.intervals import mean_and_spread, paired_gain  # noqa: E402
from prefine.model.electra import ElectraObjectiveConfig  # noqa: E402
from prefine.recipes import finetune as finetune_recipe  # noqa: E402
from prefine.recipes import pretrain as pretrain_recipe  # noqa: E402
from prefine.tasks.classification import ClassificationDataConfig  # noqa: E402
from prefine.tasks.interface import get_task  # noqa: E402

# name -> (data overrides, model overrides, training overrides[, run overrides[, ELECTRA objective
# overrides[, tokenizer overrides]]]), applied on top of the defaults of `prefine pretrain` as a
# user would pass flags.
# "default" is exactly what a plain command does.
VARIANTS: dict[str, tuple[dict, ...]] = {
    "default": ({}, {}, {}),
    # Output biases left at zero (prefine's behaviour until --frequency-bias became the default).
    "no-frequency-bias": ({}, {}, {}, {"frequency_bias": False}),
    "electra-no-frequency-bias": ({"objective": "electra"}, {}, {}, {"frequency_bias": False}),
    # Heads starting near the identity and sinusoidal position rows instead of BERT's random init.
    "mimetic": ({}, {}, {}, {"mimetic_init": True}),
    "electra-mimetic": ({"objective": "electra"}, {}, {}, {"mimetic_init": True}),
    # Word-piece embeddings starting from PPMI + SVD vectors of the corpus (--embedding-init cooccurrence).
    "cooccurrence": ({}, {}, {}, {"embedding_init": "cooccurrence"}),
    # The recipe prefine shipped before issue 15 (BERT's settings scaled down): the baseline
    # the diagnosis starts from.
    "bert-2019": (
        {"objective": "mlm+nsp", "max_seq_length": 128},
        {"hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1, "tie_word_embeddings": True},
        {"learning_rate": 5e-4, "warmup_ratio": 0.06, "batch_size": 32},
    ),
    "mlm+nsp": ({"objective": "mlm+nsp"}, {}, {}),
    # BERT's tied MLM head (prefine's default until the issue-15 diagnosis untied it).
    "tied": ({}, {"tie_word_embeddings": True}, {}),
    "mlm": ({"objective": "mlm"}, {}, {}),
    # ELECTRA (issue 16): a generator 1/4 as wide fills the masks, the encoder learns from every
    # token; the run's discriminator is what fine-tuning starts from. Its tokens/s counts the
    # text read, so the generator's extra work shows up as a lower rate.
    # (at prefine's ELECTRA learning rate, 3e-4: `pretrain.pretraining_defaults`)
    "electra": ({"objective": "electra"}, {}, {}),
    # ELECTRA at mlm's peak rate, prefine's ELECTRA default until the 15-minute runs at 3e-4
    # (then a variant named electra-lr3e-4) fine-tuned 4.4 points higher on SST-2.
    "electra-lr1e-3": ({"objective": "electra"}, {}, {"learning_rate": 1e-3}),
    # ELECTRA masking 30% instead of 15%: twice the replaced tokens the discriminator learns from
    # per step, and twice the generator's masked-LM signal, while the discriminator is still in
    # its first phase (its AUC 0.56-0.62 after 15 minutes at 15%).
    "electra-mask0.3": ({"objective": "electra", "mlm_probability": 0.3}, {}, {}),
    # ELECTRA below its default rate: 1e-3 -> 3e-4 lifted it 12-41 points on the built-in task.
    "electra-lr1e-4": ({"objective": "electra"}, {}, {"learning_rate": 1e-4}),
    # The generator's vocabulary bias left at zero (google-research/electra's start) while the
    # discriminator keeps its prior: a frequency-biased generator's first samples follow the word
    # frequencies, as the originals do, so a token's identity says nothing about whether it was
    # replaced; a uniform one's are mostly rare words out of place, an easier first phase.
    "electra-uniform-generator": ({"objective": "electra"}, {}, {}, {}, {"generator_frequency_bias": False}),
    # The same easing by temperature: samples from the generator's softmax at T = 2 spread over
    # rarer words without changing what the generator learns.
    "electra-temperature2": ({"objective": "electra"}, {}, {}, {}, {"sampling_temperature": 2.0}),
    # A generator half as wide as the discriminator (ELECTRA's paper found 1/4-1/2 best for small
    # models): it learns context sooner, so its replacements ask the discriminator for context too.
    "electra-generator0.5": ({"objective": "electra"}, {}, {}, {}, {"generator_size": 0.5}),
    # Each packed document in its own row ([CLS] document [SEP], attending only to itself), as
    # fine-tuning reads it, instead of ~14 short reviews sharing one row's attention.
    "separate-documents": ({"separate_documents": True}, {}, {}),
    "seq128": ({"max_seq_length": 128}, {}, {}),
    "seq64": ({"max_seq_length": 64}, {}, {}),
    "dropout0.1": ({}, {"hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1}, {}),
    "dropout0": ({}, {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}, {}),
    "lr5e-4": ({}, {}, {"learning_rate": 5e-4}),
    "lr1e-3": ({}, {}, {"learning_rate": 1e-3}),
    "lr2e-3": ({}, {}, {"learning_rate": 2e-3}),
    "one-cycle": ({}, {}, {"warmup_ratio": 0.5}),
    "warmup0.06": ({}, {}, {"warmup_ratio": 0.06}),
    "batch64": ({}, {}, {"batch_size": 64}),
    "batch16": ({}, {}, {"batch_size": 16}),
    "mask0.3": ({"mlm_probability": 0.3}, {}, {}),
    # cramming's batch ramp (--batch-ramp): micro-batches of 16 accumulate 1 -> 4 per step over
    # the first 60% of the budget, so the batch grows 16 -> 64; "batch64" is its fixed end point.
    "batch-ramp": ({}, {}, {"batch_size": 64, "gradient_accumulation_steps": 4, "batch_ramp": 0.6}),
    # The same ramp ending at the default batch (8 -> 32): more, smaller steps early.
    "batch-ramp32": ({}, {}, {"batch_size": 32, "gradient_accumulation_steps": 4, "batch_ramp": 0.6}),
    # Every piece of a word masked together (BERT's 2019 whole-word masking): with the small
    # vocabularies `--preset auto` picks for small corpora, a word is often several pieces, and
    # a lone masked "##piece" is guessed from its neighbours within the word, not from context.
    "whole-word-masking": ({"whole_word_masking": True}, {}, {}),
    # Twice the tiny's depth at its width (4 blocks of 128, BERT's L-4/H-128 miniature): a shape
    # between tiny (2 x 128) and mini (4 x 256) for issue 37's size table; about 1.7x the tiny's
    # cost per token at an 8,000-piece vocabulary.
    "layers4": ({}, {"num_hidden_layers": 4}, {}),
    # Korean words cut into morphemes by kiwipiepy before WordPiece (issue 37; KLUE's tokenizers
    # cut morphemes first): particles and endings become pieces of their own ("##를").
    "morphemes": ({}, {}, {}, {}, {}, {"morphemes": "kiwi"}),
}


# What `prefine finetune` does by default. The older tables in benchmarks/README.md were measured
# with at least 50 steps (`--min-steps 50` reproduces them).
MIN_FINETUNE_STEPS = 300


@dataclasses.dataclass
class LabelledSetup:
    name: str
    train: Path
    test: Path  # scored once per fine-tune; a dev split of `train` chooses the checkpoint
    fraction: float
    corpus: str
    metric: str = "accuracy"  # what the table reports: the setup's usual score
    text_column: str | None = None
    label_column: str | None = None


def prepare_builtin(work: Path) -> tuple[Path, list[LabelledSetup]]:
    from prefine.corpus.builtin import builtin_classification_task
    from prefine.recipes.quickstart import write_builtin_corpus

    corpus = work / "builtin" / "corpus.txt"
    if not corpus.exists():
        write_builtin_corpus(corpus)
    train_rows, test_rows = builtin_classification_task()
    paths = {}
    for name, rows in (("train", train_rows), ("test", test_rows)):
        paths[name] = work / "builtin" / f"{name}.jsonl"
        with open(paths[name], "w", encoding="utf-8") as handle:
            for text, label in rows:
                handle.write(json.dumps({"text": text, "label": label}) + "\n")
    return corpus, [
        LabelledSetup("builtin 10%", paths["train"], paths["test"], 0.1, "builtin"),
        LabelledSetup("builtin 100%", paths["train"], paths["test"], 1.0, "builtin"),
    ]


def prepare_sst2(work: Path, sst2_dir: Path, labels: int) -> tuple[Path, list[LabelledSetup]]:
    with open(sst2_dir / "train.tsv", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
    directory = work / "sst2"
    directory.mkdir(parents=True, exist_ok=True)
    corpus = directory / "corpus.txt"
    with open(corpus, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(row["sentence"].strip() + "\n")
    random.Random(0).shuffle(rows)
    train = directory / f"train{labels}.tsv"
    with open(train, "w", encoding="utf-8") as handle:
        handle.write("label\tsentence\n")
        for row in rows[:labels]:
            handle.write(f"{row['label']}\t{row['sentence']}\n")
    return corpus, [LabelledSetup(f"sst2 {labels // 1000}k", train, sst2_dir / "dev.tsv", 1.0, "sst2")]


def prepare_korean_comments(work: Path, source: Path) -> tuple[Path, list[LabelledSetup]]:
    directory = work / "korean-comments"
    directory.mkdir(parents=True, exist_ok=True)
    with open(source / "train.tsv", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
    corpus = directory / "corpus.txt"
    with open(corpus, "w", encoding="utf-8") as handle:
        # One comment a line; the training comments' text (never their labels, never a dev
        # comment) joins the unlabelled ones, as a user with this data would pre-train.
        for line in (source / "unlabeled.txt").read_text(encoding="utf-8").splitlines():
            if line.strip():
                handle.write(line.strip() + "\n")
        for row in rows:
            handle.write(row["comments"].strip() + "\n")
    return corpus, [
        LabelledSetup(name, source / "train.tsv", source / "dev.tsv", fraction, "korean-comments", "macro_f1", "comments", "hate")
        for name, fraction in (("korean-comments 10%", 0.1), ("korean-comments 100%", 1.0))
    ]


def corpus_format(corpus: Path) -> str:
    # The built-in corpus keeps the format its earlier tables were measured with; the others are
    # read as `prefine pretrain` auto-detects them (one comment or sentence a line: line-documents).
    return "lines" if corpus.parent.name == "builtin" else "auto"


def pretrain(variant: str, corpus: Path, out: Path, args, preset: str, vocab_size: int | str) -> dict:
    data_overrides, model_overrides, training_overrides, *rest = VARIANTS[variant]
    run_overrides = rest[0] if rest else {}
    electra_overrides = rest[1] if len(rest) > 1 else {}
    tokenizer_overrides = rest[2] if len(rest) > 2 else {}
    data = dataclasses.replace(pretrain_recipe.PRETRAIN_DATA_DEFAULTS, **data_overrides)
    defaults = pretrain_recipe.pretraining_defaults(data.objective)
    training = dataclasses.replace(
        defaults,
        max_time=args.budget,
        max_steps=0,
        eval_every=0,
        save_every=0,
        keep_last=1,
        num_threads=args.threads,
        progress=False,
        seed=args.seed,
        **training_overrides,
    )
    # Every variant of one corpus and vocabulary size shares the first variant's tokenizer
    # (WordPiece training is not reproducible), so differences come from the recipe alone.
    # A variant with tokenizer settings of its own (morphemes) gets its own tokenizer.
    tokenizer_copy = args.work_dir / "-".join(["tokenizer", corpus.parent.name, str(vocab_size), *map(str, tokenizer_overrides.values())])
    setup = pretrain_recipe.PretrainSetup(
        run=pretrain_recipe.PretrainRunConfig(
            out=str(out),
            preset=preset,
            cache_dir=str(args.work_dir / "cache"),
            registry=str(args.work_dir / "registry.sqlite"),
            tokenizer=str(tokenizer_copy) if tokenizer_copy.exists() else "",
            **run_overrides,
        ),
        corpus=CorpusConfig(paths=[str(corpus)], format=corpus_format(corpus)),
        tokenizer=dataclasses.replace(
            pretrain_recipe.TOKENIZER_DEFAULTS, **tokenizer_overrides, **({} if vocab_size == "auto" else {"vocab_size": vocab_size})
        ),
        # "auto": what `prefine pretrain --max-time T` does when no --vocab-size is given.
        vocabulary_from_budget=vocab_size == "auto" and not tokenizer_copy.exists(),
        # The recipe's own data defaults (packed mlm), not the dataclass's (mlm+nsp): "default" must be what `prefine pretrain` does.
        data=data,
        training=training,
        model_overrides=pretrain_recipe.new_model_settings(model_overrides, data),
        objective_settings=ElectraObjectiveConfig(**electra_overrides),
    )
    shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()
    result = pretrain_recipe.run_pretraining(setup)
    wall = time.perf_counter() - started
    if not tokenizer_copy.exists():
        shutil.copytree(out / "tokenizer", tokenizer_copy)
    tokens_per_second = []
    for line in (out / METRICS_FILE).read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        if "train/tokens_per_second" in record and record["step"] > 10:  # past the first, slower steps
            tokens_per_second.append(record["train/tokens_per_second"])
    record = json.loads((out / "run.json").read_text(encoding="utf-8"))
    stats = {
        # What --preset auto chose (the named preset otherwise), and the vocabulary the model has.
        "chosen_preset": record["run"]["preset"],
        "model_vocab_size": record["model"]["vocab_size"],
        "steps": result.step,
        "mlm_accuracy": result.last_eval.get("mlm_accuracy", float("nan")),
        "tokens_per_second": statistics.median(tokens_per_second) if tokens_per_second else float("nan"),
        "wall_seconds": wall,
    }
    (out / "objectives-stats.json").write_text(json.dumps(stats), encoding="utf-8")
    return stats


def finetune(run_dir: Path, setup: LabelledSetup, from_scratch: bool, seed: int, out: Path, args) -> float:
    """The test score of one fine-tune at prefine's default learning rate."""
    return float(finetune_with(run_dir, setup, from_scratch, seed, out, args).metrics[setup.metric])


def finetune_with(
    run_dir: Path, setup: LabelledSetup, from_scratch: bool, seed: int, out: Path, args, learning_rate: float = 0.0
) -> finetune_recipe.FinetuneOutcome:
    """One fine-tune as `prefine finetune` runs it (`learning_rate` 0: its width-based default)."""
    # --test without --eval: the run carves its dev split (seeded by dev_seed, not `seed`, so
    # every variant, start and seed chooses on the same examples) and reports on the test set.
    run = finetune_recipe.FinetuneRunConfig(
        init=str(run_dir),
        train=str(setup.train),
        test=str(setup.test),
        out=str(out),
        from_scratch=from_scratch,
        train_fraction=setup.fraction,
        registry=str(args.work_dir / "registry.sqlite"),
        min_steps=args.min_steps,
    )
    # The checkpoint is chosen on the metric the table reports (as KLUE chooses YNAT on macro
    # F1): chosen on accuracy, a macro-F1 setup can keep a checkpoint that neglects a small class.
    training = dataclasses.replace(
        finetune_recipe.FINETUNE_TRAINING_DEFAULTS,
        seed=seed,
        num_threads=args.threads,
        progress=False,
        best_metric=setup.metric,
        learning_rate=learning_rate,
    )
    shutil.rmtree(out, ignore_errors=True)
    # The default epochs, but at least --min-steps, so 10% of a small task is not 15 updates
    # that teach neither start anything.
    data = ClassificationDataConfig(text_column=setup.text_column, label_column=setup.label_column)
    outcome = finetune_recipe.run_finetune(get_task("classification"), run, data, training, explicit_steps=False, full_report=False)
    shutil.rmtree(out, ignore_errors=True)
    return outcome


def finished_pretraining(run_dir: Path) -> dict | None:
    """The stats of a pre-training run this benchmark already finished (--reuse), else None."""
    stats_file = run_dir / "objectives-stats.json"
    if not stats_file.is_file():
        return None
    stats = json.loads(stats_file.read_text(encoding="utf-8"))
    # Runs finished before the stats recorded the model's preset and vocabulary (--preset auto):
    # read them from the run's own record, which always had them.
    if "chosen_preset" not in stats or "model_vocab_size" not in stats:
        record = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
        stats.setdefault("chosen_preset", record["run"]["preset"])
        stats.setdefault("model_vocab_size", record["model"]["vocab_size"])
    return stats


def summary(values: list[float]) -> str:
    mean = statistics.mean(values) * 100
    spread = (statistics.stdev(values) * 100) if len(values) > 1 else 0.0
    return f"{mean:.1f} ± {spread:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", default="5m", help="pre-training wall-clock budget per variant (prefine's --max-time)")
    parser.add_argument("--presets", "--preset", dest="presets", default="mini", help="comma-separated model presets: tiny, mini, ...")
    parser.add_argument("--variants", default="default,bert-2019", help=f"comma-separated, from: {', '.join(VARIANTS)}")
    parser.add_argument("--corpora", default="builtin,sst2", help="comma-separated, from: builtin, sst2, korean-comments")
    parser.add_argument("--sst2", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data" / "sst2")
    parser.add_argument("--korean-comments", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data" / "korean-comments")
    parser.add_argument("--sst2-labels", type=int, default=2000)
    parser.add_argument("--seeds", type=int, default=3, help="fine-tuning seeds per setup")
    parser.add_argument(
        "--vocab-sizes",
        "--vocab-size",
        dest="vocab_sizes",
        default=str(pretrain_recipe.TOKENIZER_DEFAULTS.vocab_size),
        help="comma-separated WordPiece vocabulary sizes",
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=42, help="pre-training seed")
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/prefine-objectives"))
    parser.add_argument(
        "--min-steps",
        type=int,
        default=MIN_FINETUNE_STEPS,
        help="fine-tuning steps at least (prefine's default, 300; 50 reproduces benchmarks/README.md's older tables)",
    )
    parser.add_argument(
        "--results",
        type=Path,
        default=None,
        help="also write the final JSON here (e.g. benchmarks/results/NAME.json, rendered by scripts/render_results.py)",
    )
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="reuse pre-training runs this benchmark finished earlier with the same budget (re-run fine-tuning only)",
    )
    args = parser.parse_args()
    variants = [name for name in args.variants.split(",") if name]
    presets = [name for name in args.presets.split(",") if name]
    try:
        vocab_sizes: list[int | str] = [size if size == "auto" else int(size) for size in args.vocab_sizes.split(",") if size]
    except ValueError:
        sys.exit(f"--vocab-sizes {args.vocab_sizes}: give whole numbers or auto separated by commas, e.g. 8000,30522")
    from prefine.model import PRESETS

    if any(name not in PRESETS and name != "auto" for name in presets):
        sys.exit(f"unknown preset in --presets {args.presets}; choose from auto, {', '.join(PRESETS)}")
    unknown = [name for name in variants if name not in VARIANTS]
    if unknown:
        sys.exit(f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
    try:
        # prefine's own check of --min-steps, here rather than at the first fine-tune, after a pre-training budget has been spent.
        finetune_recipe.FinetuneRunConfig(min_steps=args.min_steps)
    except PrefineError as error:
        sys.exit(str(error))
    args.work_dir.mkdir(parents=True, exist_ok=True)
    # One fine-tuning folder per process: finetune() empties it first, so two benchmarks sharing a
    # --work-dir (one per core) would otherwise delete each other's run mid-training.
    finetune_dir = args.work_dir / f"ft-{os.getpid()}"

    corpora = {}
    for name in args.corpora.split(","):
        if name == "builtin":
            corpora[name] = prepare_builtin(args.work_dir)
        elif name == "sst2":
            if not (args.sst2 / "train.tsv").exists():
                sys.exit(f"{args.sst2} has no train.tsv; pass --sst2 DIR with SST-2's train.tsv and dev.tsv, or --corpora builtin")
            corpora[name] = prepare_sst2(args.work_dir, args.sst2, args.sst2_labels)
        elif name == "korean-comments":
            if not (args.korean_comments / "unlabeled.txt").exists():
                sys.exit(f"{args.korean_comments} has no unlabeled.txt; pass --korean-comments DIR (train.tsv, dev.tsv, unlabeled.txt)")
            corpora[name] = prepare_korean_comments(args.work_dir, args.korean_comments)
        else:
            sys.exit(f"unknown corpus {name}; use builtin, sst2 and/or korean-comments")

    results: list[dict] = []
    shapes = [(preset, vocab_size) for preset in presets for vocab_size in vocab_sizes]
    for corpus_name, (corpus, setups) in corpora.items():
        pretrained = {}
        for preset, vocab_size in shapes:
            for variant in variants:
                run_dir = args.work_dir / "runs" / f"{corpus_name}-{args.budget}-{preset}-v{vocab_size}-{variant}"
                reused = finished_pretraining(run_dir) if args.reuse else None
                if reused is not None:
                    print(f"\n=== reusing {run_dir} ({reused['steps']} steps)", flush=True)
                    pretrained[preset, vocab_size, variant] = (run_dir, reused)
                    continue
                print(f"\n=== pre-training {variant} ({preset}, vocabulary {vocab_size}) on {corpus_name} for {args.budget}", flush=True)
                pretrained[preset, vocab_size, variant] = (run_dir, pretrain(variant, corpus, run_dir, args, preset, vocab_size))
        for setup in setups:
            for preset, vocab_size in shapes:
                # Fine-tuning sets its own dropout and every variant of one shape shares the
                # architecture and tokenizer, so one random-init baseline per seed serves them all.
                scratch_cache: list[float] = []
                for variant in variants:
                    run_dir, stats = pretrained[preset, vocab_size, variant]
                    scores, scratch = [], []
                    for seed in range(args.seeds):
                        print(f"--- {setup.name}: {variant} ({preset}, vocabulary {vocab_size}) seed {seed}", flush=True)
                        scores.append(finetune(run_dir, setup, False, seed, finetune_dir, args))
                        if len(scratch_cache) <= seed:
                            scratch_cache.append(finetune(run_dir, setup, True, seed, finetune_dir, args))
                        scratch.append(scratch_cache[seed])
                    gain = paired_gain(scores, scratch)
                    pretrained_mean, pretrained_std = mean_and_spread(scores)
                    scratch_mean, scratch_std = mean_and_spread(scratch)
                    results.append(
                        {
                            "setup": setup.name,
                            "metric": setup.metric,
                            "variant": variant,
                            "budget": args.budget,
                            "preset": preset,
                            "vocab_size": vocab_size,
                            "pretrained": scores,
                            "scratch": scratch,
                            "pretrained_mean": pretrained_mean,
                            "pretrained_std": pretrained_std,
                            "scratch_mean": scratch_mean,
                            "scratch_std": scratch_std,
                            "gain": gain.mean,
                            "gain_low": gain.low,
                            "gain_high": gain.high,
                            "verdict": gain.verdict,
                            "gain_points": gain.mean * 100,
                            **stats,
                        }
                    )
                    print(json.dumps(results[-1]), flush=True)

    header = [
        "setup",
        "model",
        "variant",
        "pre-trained %",
        "random init %",
        "gain (points)",
        "95% interval",
        "verdict",
        "MLM acc",
        "tokens/s",
        "steps",
    ]
    rows = [
        [
            f"{r['setup']} ({r['metric'].replace('_', ' ')})",
            f"{r['preset']} ({r['chosen_preset']}), vocabulary {r['vocab_size']} ({r['model_vocab_size']})",
            r["variant"],
            summary(r["pretrained"]),
            summary(r["scratch"]),
            f"{r['gain_points']:+.1f}",
            "-" if r["gain_low"] is None else f"{r['gain_low'] * 100:+.1f} to {r['gain_high'] * 100:+.1f}",
            r["verdict"],
            f"{r['mlm_accuracy']:.1%}",
            r["tokens_per_second"],
            r["steps"],
        ]
        for r in results
    ]
    print(
        f"\npre-training budget {args.budget} per variant, presets {args.presets}, vocabularies {args.vocab_sizes}, "
        f"{args.seeds} fine-tuning seeds of at least {args.min_steps} steps, {args.threads} threads"
    )
    print(markdown_table(header, rows))
    final = {
        "benchmark": "objectives",
        "kind": "objectives",
        "budget": args.budget,
        "preset": args.presets,
        "vocab_sizes": vocab_sizes,
        "min_finetune_steps": args.min_steps,
        "seeds": args.seeds,
        "command": invoked_command(),
        "commit": source_commit(),
        "date": time.strftime("%Y-%m-%d"),
        "machine": describe_machine(args.threads),
        "results": results,
    }
    if args.results is not None:
        args.results.parent.mkdir(parents=True, exist_ok=True)
        args.results.write_text(json.dumps(final, indent=2) + "\n", encoding="utf-8")
    print_json(final)


if __name__ == "__main__":
    main()
