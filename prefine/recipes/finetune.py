"""`prefine finetune / evaluate / predict / compare` for sentence and sentence-pair classification.

Pre-trained weights become the initial values of a `BertForSequenceClassification` whose
classifier starts fresh; the shared training loop trains it, evaluating every epoch and keeping
the best checkpoint by the chosen metric. `compare` makes the recipe's central claim
measurable: the same fine-tuning, once from the pre-trained weights and once from random
weights of the same shape, on growing fractions of the labelled data; `compare --checkpoints`
does it from each saved checkpoint of a pre-training run, to show how much pre-training is enough.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from prefine.checkpoint import (
    TOKENIZER_DIR,
    load_model_config,
    load_weights,
    model_checkpoint_of,
    read_run,
    write_run,
)
from prefine.config import add_dataclass_arguments, from_args, option
from prefine.errors import PrefineError
from prefine.metrics.classification import format_metrics_table
from prefine.model import BertForSequenceClassification, config_from_dict
from prefine.recipes import question_answering as qa_recipe
from prefine.recipes.checkpoint_curve import (
    CHECKPOINTS_HELP,
    PretrainCheckpoint,
    format_checkpoint_table,
    mlm_accuracy_by_step,
    plot_checkpoint_curve,
    select_checkpoints,
)
from prefine.recipes.common import load_initial_weights, recorded_finetune, run_record, start_finetune, with_finetune_learning_rate
from prefine.tasks.classification import (
    ClassificationBatches,
    ClassificationColumns,
    ClassificationDataConfig,
    ClassificationTask,
    EncodedExamples,
    LabelSet,
    encode_examples,
    evaluation_metrics,
    load_classification_data,
    predict_logits,
    probabilities_from_logits,
    read_classification_inputs,
    write_predictions,
)
from prefine.tokenizer import load_tokenizer, save_tokenizer, tokenizer_fingerprint
from prefine.training import TrainingConfig, resolve_device, train


@dataclass
class FinetuneRunConfig:
    task: Literal["classification", "qa"] = option("classification", "classification (texts and labels) or qa (extractive question answering on SQuAD-format JSON)")
    init: str = option("", "pre-trained weights: a prefine run folder or a Hugging Face BERT folder/name")
    train: str = option("", "labelled training data: .tsv, .csv, .jsonl or a Hugging Face dataset name")
    eval: str = option("", "labelled evaluation data (same columns as --train)")
    out: str = option("", "run folder to create")
    from_scratch: bool = option(False, "use --init's architecture and tokenizer but random weights (the baseline pre-training must beat)")
    epochs: float = option(3.0, "passes over the training data; sets --max-steps unless that is given")
    train_fraction: float = option(1.0, "fine-tune on this random fraction of the training data (seeded)")
    classifier_dropout: float = option(0.1, "dropout before the classifier")
    reinit_layers: int = option(
        0, "give the top N encoder blocks (and the pooler) fresh random weights before fine-tuning: blocks a short pre-training "
        "shaped for its own objective can transfer worse than random ones (Zhang et al. 2021, 'Revisiting Few-sample BERT Fine-tuning')",
    )
    dropout: float = option(
        0.1,
        "dropout inside the encoder while fine-tuning (BERT's 0.1), whatever the pre-training used: pre-training on a small "
        "budget runs without dropout, while a few thousand labels need it; -1 keeps the checkpoint's own values",
    )
    eval_batch_size: int = option(64, "examples per evaluation batch")
    registry: str = option("", "run registry database (default: registry.sqlite beside the run folder, or $PREFINE_REGISTRY)")
    name: str = option("", "name of the run in the registry (default: the run folder's name)")


FINETUNE_TRAINING_DEFAULTS = TrainingConfig(
    max_steps=1, batch_size=32, learning_rate=0.0, warmup_ratio=0.1, eval_every=0, eval_at_epoch_end=True,
    save_every=0, keep_last=1, log_every=10, best_metric="",
)


def add_command(subparsers) -> None:
    parser = subparsers.add_parser("finetune", help="fine-tune a pre-trained encoder for (pair) classification or regression")
    add_dataclass_arguments(parser.add_argument_group("run"), FinetuneRunConfig)
    add_dataclass_arguments(parser.add_argument_group("task data"), ClassificationDataConfig)
    add_dataclass_arguments(parser.add_argument_group("question answering data (--task qa)"), qa_recipe.QADataConfig)
    add_dataclass_arguments(parser.add_argument_group("training"), TrainingConfig, defaults=FINETUNE_TRAINING_DEFAULTS)
    parser.set_defaults(func=finetune_from_args)

    evaluate = subparsers.add_parser("evaluate", help="score a fine-tuned run on labelled data")
    evaluate.add_argument("run", help="a fine-tuned run folder")
    evaluate.add_argument("--data", required=True, help="labelled data with the run's columns")
    evaluate.add_argument("--batch-size", type=int, default=64, help="examples per batch (default: 64)")
    evaluate.set_defaults(func=evaluate_from_args)

    predict = subparsers.add_parser("predict", help="label new texts with a fine-tuned run (file or stdin, one text per line)")
    predict.add_argument("run", help="a fine-tuned run folder")
    predict.add_argument("--data", default="-", help="texts to label: a .tsv/.csv/.jsonl with the run's text column, or - for one text per line on stdin")
    predict.add_argument("--format", choices=["jsonl", "tsv"], default="jsonl", help="output format (default: jsonl)")
    predict.add_argument("--output", default="-", help="where to write predictions (default: stdout)")
    predict.add_argument("--batch-size", type=int, default=64, help="examples per batch (default: 64)")
    predict.add_argument("--question", help="QA runs: the question to answer in --context")
    predict.add_argument("--context", help="QA runs: the passage holding the answer")
    predict.add_argument("--nbest", type=int, default=0, help="QA runs: also show the N best answers with probabilities (with --data: write them instead of the answers)")
    predict.set_defaults(func=predict_from_args)

    compare = subparsers.add_parser(
        "compare",
        help="fine-tune from pre-trained vs random weights on growing label fractions (or from each pre-training checkpoint)",
        description="Fine-tune from --init's weights and from random weights at each label fraction and tabulate the metric. "
        "With --checkpoints, fine-tune from each saved checkpoint of the --init pre-training run instead, and plot the metric "
        "against pre-training time and tokens seen: the curve that says whether to pre-train longer.",
    )
    compare.add_argument("--fractions", default="0.01,0.1,1.0", help="comma-separated fractions of the training data (default: 0.01,0.1,1.0)")
    compare.add_argument("--checkpoints", default="", metavar="all|STEP,STEP,...", help=CHECKPOINTS_HELP)
    compare.add_argument("--min-steps", type=int, default=50, help="at least this many steps per fine-tuning, however small the fraction (default: 50)")
    add_dataclass_arguments(compare.add_argument_group("run"), FinetuneRunConfig, skip=("task", "from_scratch", "train_fraction", "name"))
    add_dataclass_arguments(compare.add_argument_group("task data"), ClassificationDataConfig)
    add_dataclass_arguments(compare.add_argument_group("training"), TrainingConfig, defaults=FINETUNE_TRAINING_DEFAULTS)
    compare.set_defaults(func=compare_from_args)


# ---------------------------------------------------------------------------------------------
# finetune


def _subsample(examples: EncodedExamples, fraction: float, seed: int) -> EncodedExamples:
    if fraction >= 1.0:
        return examples
    if fraction <= 0.0:
        raise PrefineError(f"--train-fraction {fraction} must be above 0")
    count = max(1, round(len(examples) * fraction))
    chosen = np.sort(np.random.default_rng([seed, 1234]).permutation(len(examples))[:count])
    lengths = examples.lengths[chosen]
    token_positions = np.concatenate([np.arange(examples.offsets[i], examples.offsets[i + 1]) for i in chosen])
    return EncodedExamples(
        input_ids=examples.input_ids[token_positions],
        token_type_ids=examples.token_type_ids[token_positions],
        offsets=np.concatenate([[0], np.cumsum(lengths)]),
        labels=None if examples.labels is None else examples.labels[chosen],
    )


def _default_best_metric(label_set: LabelSet) -> str:
    return "pearson" if label_set.is_regression else "accuracy"


def run_finetune(run: FinetuneRunConfig, data: ClassificationDataConfig, training: TrainingConfig, explicit_steps: bool) -> dict:
    if run.task == "qa":
        return qa_recipe.run_qa_finetune(run, qa_recipe.QADataConfig(), training, explicit_steps)
    run_dir, context, init = start_finetune(run, training.device, data.max_seq_length, "--max-seq-length")
    training = with_finetune_learning_rate(training, init.config)
    tokenizer = init.tokenizer

    train_examples, eval_examples, label_set, columns = load_classification_data(run.train, run.eval or None, data, tokenizer)
    train_examples = _subsample(train_examples, run.train_fraction, training.seed)
    if not explicit_steps:
        steps = math.ceil(run.epochs * len(train_examples) / training.batch_size)
        training = dataclasses.replace(training, max_steps=max(steps, 1))
    if not training.best_metric and eval_examples is not None:
        training = dataclasses.replace(training, best_metric=_default_best_metric(label_set))

    torch.manual_seed(training.seed)
    model = BertForSequenceClassification(init.config, label_set.num_labels, classifier_dropout=run.classifier_dropout)
    load_initial_weights(model, init, run.from_scratch, announce=context.is_main, reinit_layers=run.reinit_layers)

    if context.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_tokenizer(tokenizer, run_dir / TOKENIZER_DIR, model_max_length=data.max_seq_length)
    fingerprint = tokenizer_fingerprint(tokenizer)
    checkpoint_config = {
        **dataclasses.asdict(init.config),
        "model_type": "bert",
        "architectures": ["BertForSequenceClassification"],
        "tokenizer_fingerprint": fingerprint,
        "max_seq_length": data.max_seq_length,
        "classifier_dropout": run.classifier_dropout,
        **label_set.to_json(),
    }
    record = run_record(
        "finetune",
        task="classification",
        run=run,
        data=data,
        training=training,
        columns=dataclasses.asdict(columns),
        labels=label_set.to_json(),
        model=init.config,
        init=init.description,
        num_train_examples=len(train_examples),
    )
    if context.is_main:
        write_run(run_dir, record)
        print(
            f"fine-tuning on {len(train_examples)} examples ({', '.join(label_set.names) if not label_set.is_regression else 'regression'}), "
            f"{training.max_steps} steps of {training.batch_size} at learning rate {training.learning_rate:g}; columns: text={columns.text}"
            + (f", pair={columns.text_pair}" if columns.text_pair else "")
            + f", label={columns.label}"
        )
    pad_id = tokenizer.token_to_id("[PAD]")
    batches = ClassificationBatches(train_examples, training.batch_size // training.gradient_accumulation_steps, pad_id, training.seed)
    task = ClassificationTask(batches, eval_examples, label_set, run.eval_batch_size, context.device)
    with recorded_finetune(run, run_dir, init, record, fingerprint, context.is_main) as handle:
        result = train(model, task, training, run_dir, checkpoint_config, context)
        final = {}
        if eval_examples is not None:
            final = _evaluate_checkpoint(run_dir, eval_examples, label_set, run.eval_batch_size, context.device)
            if context.is_main:
                print(f"best checkpoint ({training.best_metric}): {model_checkpoint_of(run_dir).name}")
                print(format_metrics_table(final))
                (run_dir / "eval_metrics.json").write_text(json.dumps(final, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
            key = training.best_metric
            handle.set_metrics({k: v for k, v in final.items() if isinstance(v, (int, float))}, (f"eval/{key}", float(final[key])))
    return final or result.last_eval


def finetune_from_args(args: argparse.Namespace) -> int:
    run = from_args(FinetuneRunConfig, args)
    if run.task == "qa":
        qa_recipe.reject_flags_of(args, ClassificationDataConfig, "--task qa")
        training = from_args(TrainingConfig, args, base=FINETUNE_TRAINING_DEFAULTS)
        qa_recipe.run_qa_finetune(run, from_args(qa_recipe.QADataConfig, args), training, explicit_steps=args.max_steps is not None)
        return 0
    qa_recipe.reject_flags_of(args, qa_recipe.QADataConfig, "classification (add --task qa for question answering)")
    data = from_args(ClassificationDataConfig, args)
    training = from_args(TrainingConfig, args, base=FINETUNE_TRAINING_DEFAULTS)
    run_finetune(run, data, training, explicit_steps=args.max_steps is not None)
    return 0


# ---------------------------------------------------------------------------------------------
# loading a fine-tuned run (evaluate / predict)


@dataclass
class FinetunedModel:
    model: BertForSequenceClassification
    tokenizer: object
    label_set: LabelSet
    columns: ClassificationColumns
    data: ClassificationDataConfig
    pad_id: int


def load_finetuned(run_dir: Path, device: torch.device) -> FinetunedModel:
    saved = read_run(run_dir)
    if saved.get("kind") != "finetune" or saved.get("task") != "classification":
        raise PrefineError(f"{run_dir} is not a fine-tuned classification run; pass the --out folder of prefine finetune")
    checkpoint = model_checkpoint_of(run_dir)
    config_json = load_model_config(checkpoint)
    config = config_from_dict(config_json, str(checkpoint / "config.json"))
    label_set = LabelSet.from_json(config_json, str(checkpoint / "config.json"))
    tokenizer = load_tokenizer(run_dir / TOKENIZER_DIR)
    from prefine.recipes.common import check_tokenizer_matches

    check_tokenizer_matches(tokenizer, config, run_dir / TOKENIZER_DIR, checkpoint)
    model = BertForSequenceClassification(config, label_set.num_labels)
    model.load_state_dict(load_weights(checkpoint))
    model.to(device).eval()
    data = ClassificationDataConfig(**{key: value for key, value in saved["data"].items()})
    columns = ClassificationColumns(**saved["columns"])
    return FinetunedModel(model, tokenizer, label_set, columns, data, tokenizer.token_to_id("[PAD]"))


def _evaluate_checkpoint(run_dir: Path, examples: EncodedExamples, label_set: LabelSet, batch_size: int, device: torch.device) -> dict:
    loaded = load_finetuned(run_dir, device)
    logits = predict_logits(loaded.model, examples, batch_size, device, loaded.pad_id)
    return evaluation_metrics(logits, examples.labels, label_set)


def evaluate_from_args(args: argparse.Namespace) -> int:
    if read_run(Path(args.run)).get("task") == "qa":
        return qa_recipe.evaluate_from_args(args)
    device = resolve_device("auto")
    loaded = load_finetuned(Path(args.run), device)
    inputs = read_classification_inputs(args.data, loaded.data, "validation", columns=loaded.columns)
    labels = loaded.label_set.encode(inputs.raw_labels, inputs.table.source, inputs.table.where)
    examples = encode_examples(inputs.texts, inputs.text_pairs, loaded.tokenizer, loaded.data.max_seq_length, labels)
    logits = predict_logits(loaded.model, examples, args.batch_size, device, loaded.pad_id)
    metrics = evaluation_metrics(logits, labels, loaded.label_set)
    print(format_metrics_table(metrics))
    print(json.dumps({key: value for key, value in metrics.items() if isinstance(value, (int, float))}))
    return 0


def predict_from_args(args: argparse.Namespace) -> int:
    if read_run(Path(args.run)).get("task") == "qa":
        return qa_recipe.predict_from_args(args)
    if args.question is not None or args.context is not None or args.nbest:
        raise PrefineError("--question, --context and --nbest are for QA runs; this run classifies texts: pass --data FILE or pipe one text per line")
    device = resolve_device("auto")
    loaded = load_finetuned(Path(args.run), device)
    if args.data == "-":
        texts = [line.rstrip("\n") for line in sys.stdin if line.strip()]
        pairs = None
        if loaded.columns.text_pair:
            split = [text.split("\t", 1) for text in texts]
            if any(len(parts) != 2 for parts in split):
                raise PrefineError("this run classifies text pairs; give one 'text<TAB>pair' per line on stdin")
            texts, pairs = [parts[0] for parts in split], [parts[1] for parts in split]
    else:
        inputs = read_classification_inputs(args.data, loaded.data, "test", columns=dataclasses.replace(loaded.columns, label=None), need_label=False)
        texts, pairs = inputs.texts, inputs.text_pairs
    if not texts:
        raise PrefineError("no texts to label; pass --data FILE or pipe one text per line")
    examples = encode_examples(texts, pairs, loaded.tokenizer, loaded.data.max_seq_length)
    logits = predict_logits(loaded.model, examples, args.batch_size, device, loaded.pad_id)
    probabilities = probabilities_from_logits(logits, loaded.label_set)
    if args.output == "-":
        write_predictions(texts, probabilities, loaded.label_set, sys.stdout, args.format, pairs)
    else:
        with open(args.output, "w", encoding="utf-8") as handle:
            write_predictions(texts, probabilities, loaded.label_set, handle, args.format, pairs)
    return 0


# ---------------------------------------------------------------------------------------------
# compare


def _headline(metrics: dict) -> tuple[str, float]:
    for key in ("accuracy", "pearson"):
        if key in metrics:
            return key, float(metrics[key])
    raise PrefineError("the comparison needs --eval data to score the models")


def run_comparison(
    run: FinetuneRunConfig,
    data: ClassificationDataConfig,
    training: TrainingConfig,
    fractions: list[float],
    min_steps: int,
    explicit_steps: bool,
) -> list[dict]:
    if not run.eval:
        raise PrefineError("prefine compare needs --eval data to score both models")
    out = Path(run.out or "runs/compare")
    rows = []
    for fraction in fractions:
        results = {}
        for start in ("pretrained", "scratch"):
            run_dir = out / f"{start}-{fraction:g}"
            shutil.rmtree(run_dir, ignore_errors=True)
            this_run = dataclasses.replace(run, out=str(run_dir), from_scratch=start == "scratch", train_fraction=fraction, name="")
            steps_training = _training_for_fraction(this_run, data, training, min_steps, explicit_steps)
            print(f"\n== fraction {fraction:g}, {start}")
            metrics = run_finetune(this_run, data, steps_training, explicit_steps=True)
            results[start] = metrics
        name, pretrained_value = _headline(results["pretrained"])
        _, scratch_value = _headline(results["scratch"])
        rows.append(
            {
                "fraction": fraction,
                "examples": _count_examples(dataclasses.replace(run, train_fraction=fraction), data),
                "metric": name,
                "pretrained": pretrained_value,
                "scratch": scratch_value,
                "gain": pretrained_value - scratch_value,
            }
        )
    return _report_comparison(rows, format_comparison(rows), plot_comparison, out, "comparison")


def _report_comparison(rows: list[dict], table: str, plot_rows, out: Path, json_key: str) -> list[dict]:
    """Print the table, draw compare.png, write compare.json and print the final JSON line."""
    print("\n" + table)
    plot = plot_rows(rows, out / "compare.png")
    if plot:
        print(f"plot: {plot}")
    (out / "compare.json").write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({json_key: rows}))
    return rows


def _training_for_fraction(
    run: FinetuneRunConfig, data: ClassificationDataConfig, training: TrainingConfig, min_steps: int, explicit_steps: bool
) -> TrainingConfig:
    if explicit_steps:
        return training
    # Same number of epochs for every fraction, but never fewer than min_steps: a 1% split
    # would otherwise get a handful of updates and measure nothing.
    examples = _count_examples(run, data)
    steps = max(math.ceil(run.epochs * examples / training.batch_size), min_steps)
    return dataclasses.replace(training, max_steps=steps)


def run_checkpoint_comparison(
    run: FinetuneRunConfig,
    data: ClassificationDataConfig,
    training: TrainingConfig,
    fractions: list[float],
    min_steps: int,
    explicit_steps: bool,
    checkpoints: str,
) -> list[dict]:
    """Fine-tune from each chosen checkpoint of a pre-training run, and from random weights, at each fraction.

    Every fine-tune shares the data, seed and step budget of its fraction, so the rows differ only
    in where the encoder's weights came from. All inputs are checked before the first fine-tune.
    """
    if not run.eval:
        raise PrefineError("prefine compare needs --eval data to score the fine-tuned models")
    if not run.train:
        raise PrefineError("pass --train FILE with the labelled data to fine-tune on")
    run_dir, chosen = select_checkpoints(run.init, checkpoints)
    newest = chosen[-1].path
    positions = load_model_config(newest).get("max_position_embeddings")
    if positions is not None and data.max_seq_length > positions:
        raise PrefineError(f"--max-seq-length {data.max_seq_length} exceeds the model's {positions} positions; lower it")
    _check_labelled_data(run, data)
    examples = {fraction: _count_examples(dataclasses.replace(run, train_fraction=fraction), data) for fraction in fractions}

    out = Path(run.out or "runs/compare")
    starts = [(0, None)] + [(checkpoint.step, checkpoint) for checkpoint in chosen]
    total = len(starts) * len(fractions)
    print(f"fine-tuning {total} times: from random weights and from {len(chosen)} checkpoints of {run_dir} "
          f"(steps {', '.join(str(checkpoint.step) for checkpoint in chosen)}) at label fractions {', '.join(f'{f:g}' for f in fractions)}")
    rows = []
    done = 0
    for step, checkpoint in starts:
        results = []
        for fraction in fractions:
            done += 1
            label = "scratch" if checkpoint is None else f"step-{step}"
            fine_tune_dir = out / f"{label}-{fraction:g}"
            shutil.rmtree(fine_tune_dir, ignore_errors=True)
            this_run = dataclasses.replace(
                run, init=str(run_dir if checkpoint is None else checkpoint.path), out=str(fine_tune_dir),
                from_scratch=checkpoint is None, train_fraction=fraction, name="",
            )
            print(f"\n== [{done}/{total}] {'random weights' if checkpoint is None else f'pre-training step {step}'}, fraction {fraction:g}")
            metrics = run_finetune(this_run, data, _training_for_fraction(this_run, data, training, min_steps, explicit_steps), explicit_steps=True)
            name, value = _headline(metrics)
            results.append({"fraction": fraction, "examples": examples[fraction], "value": value, "run": str(fine_tune_dir)})
        rows.append(
            {
                "step": step,
                "from_scratch": checkpoint is None,
                "checkpoint": None if checkpoint is None else str(checkpoint.path),
                "pretraining_seconds": 0.0 if checkpoint is None else checkpoint.elapsed_seconds,
                "tokens_seen": 0 if checkpoint is None else checkpoint.tokens_seen,
                "mlm_accuracy": _mlm_accuracy_at_start(run_dir, checkpoint),
                "metric": name,
                "results": results,
            }
        )
    return _report_comparison(rows, format_checkpoint_table(rows), plot_checkpoint_curve, out, "checkpoint_comparison")


def _mlm_accuracy_at_start(run_dir: Path, checkpoint: PretrainCheckpoint | None) -> float | None:
    if checkpoint is not None:
        return checkpoint.mlm_accuracy
    # The pre-training run's evaluation before its first step (--eval-at-start) scores random weights.
    return mlm_accuracy_by_step(run_dir).get(0)


def _check_labelled_data(run: FinetuneRunConfig, data: ClassificationDataConfig) -> None:
    """Read --train and --eval as fine-tuning will, so a wrong path, column or label fails before hours of work."""
    train_inputs = read_classification_inputs(run.train, data, data.dataset_split)
    label_set = LabelSet.from_training_labels(train_inputs.raw_labels, data.task_type, train_inputs.table.source, train_inputs.table.where)  # type: ignore[arg-type]
    held_out = read_classification_inputs(run.eval, data, "validation", columns=train_inputs.columns)
    label_set.encode(held_out.raw_labels, held_out.table.source, held_out.table.where)  # type: ignore[arg-type]


_example_counts: dict[tuple, int] = {}


def _count_examples(run: FinetuneRunConfig, data: ClassificationDataConfig) -> int:
    key = (run.train, run.train_fraction, data.text_column, data.dataset_split)
    if key not in _example_counts:
        inputs = read_classification_inputs(run.train, data, data.dataset_split)
        _example_counts[key] = max(1, round(len(inputs.texts) * run.train_fraction)) if run.train_fraction < 1 else len(inputs.texts)
    return _example_counts[key]


def format_comparison(rows: list[dict]) -> str:
    metric = rows[0]["metric"] if rows else "metric"
    lines = [
        f"| fraction | examples | pretrained {metric} | scratch {metric} | gain |",
        "|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['fraction']:g} | {row['examples']} | {row['pretrained']:.4f} | {row['scratch']:.4f} | {row['gain']:+.4f} |"
        )
    return "\n".join(lines)


def plot_comparison(rows: list[dict], path: Path) -> Path | None:
    """Learning curves (metric vs labelled examples) of both starts; None without matplotlib."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        print("(install matplotlib, e.g. pip install prefine[plot], for the learning-curve plot)")
        return None
    figure = Figure(figsize=(6, 4))
    axes = figure.add_subplot()
    examples = [row["examples"] for row in rows]
    axes.plot(examples, [row["pretrained"] for row in rows], marker="o", label="from pre-trained weights")
    axes.plot(examples, [row["scratch"] for row in rows], marker="s", label="from random weights")
    axes.set_xscale("log")
    axes.set_xlabel("labelled training examples")
    axes.set_ylabel(rows[0]["metric"] if rows else "metric")
    axes.set_title("Fine-tuning: pre-trained vs from scratch")
    axes.grid(True, alpha=0.3)
    axes.legend()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(figure).print_png(str(path))
    return path


def compare_from_args(args: argparse.Namespace) -> int:
    try:
        fractions = [float(part) for part in args.fractions.split(",") if part.strip()]
    except ValueError:
        raise PrefineError(f"--fractions {args.fractions!r} must be comma-separated numbers such as 0.01,0.1,1.0") from None
    if not fractions or any(not 0 < fraction <= 1 for fraction in fractions):
        raise PrefineError("--fractions must be numbers in (0, 1], e.g. 0.01,0.1,1.0")
    run = from_args(FinetuneRunConfig, args)
    data = from_args(ClassificationDataConfig, args)
    training = from_args(TrainingConfig, args, base=FINETUNE_TRAINING_DEFAULTS)
    if args.checkpoints.strip():
        run_checkpoint_comparison(run, data, training, fractions, args.min_steps, args.max_steps is not None, args.checkpoints)
        return 0
    run_comparison(run, data, training, fractions, args.min_steps, explicit_steps=args.max_steps is not None)
    return 0


# ---------------------------------------------------------------------------------------------
# quickstart's second half


def run_builtin_comparison(pretrain_dir: Path, out: Path, quickstart) -> list[dict]:
    """Fine-tune on the built-in docstring task from the pre-trained run and from scratch."""
    from prefine.corpus.builtin import builtin_classification_task

    train_rows, test_rows = builtin_classification_task()
    task_dir = out / "task"
    task_dir.mkdir(parents=True, exist_ok=True)
    for name, rows in (("train.jsonl", train_rows), ("test.jsonl", test_rows)):
        with open(task_dir / name, "w", encoding="utf-8") as handle:
            for text, label in rows:
                handle.write(json.dumps({"text": text, "label": label}, ensure_ascii=False) + "\n")
    labels = sorted({label for _, label in train_rows})
    majority = max(sum(1 for _, label in test_rows if label == name) for name in labels) / len(test_rows)
    print(f"{len(labels)} packages ({', '.join(labels)}); {len(train_rows)} training / {len(test_rows)} test docstrings "
          f"(test docstrings were never seen in pre-training); majority-class accuracy {majority:.1%}")
    run = FinetuneRunConfig(
        init=str(pretrain_dir), train=str(task_dir / "train.jsonl"), eval=str(task_dir / "test.jsonl"),
        out=str(out / "finetune"), registry=str(out / "registry.sqlite"),
    )
    training = dataclasses.replace(
        FINETUNE_TRAINING_DEFAULTS, max_steps=quickstart.finetune_steps, batch_size=32,
        seed=quickstart.seed, num_threads=quickstart.num_threads, progress=quickstart.progress, eval_at_epoch_end=False,
        eval_every=max(quickstart.finetune_steps // 3, 1),
    )
    return run_comparison(run, ClassificationDataConfig(max_seq_length=128), training, [0.1, 1.0], min_steps=1, explicit_steps=True)
