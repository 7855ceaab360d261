"""`prefine finetune --task qa`, and `evaluate` / `predict` of the runs it makes: extractive QA.

Pre-trained weights become the encoder of a `BertForQuestionAnswering` whose start/end layer
starts fresh. Training and evaluation data are SQuAD-format JSON (SQuAD v1.1, v2.0, KorQuAD 1.0);
long contexts are cut into overlapping windows (`--max-length`, `--doc-stride`), and answers are
scored with the official script of the data's flavor, so EM/F1 are comparable with published
numbers. The run folder ends with the official `predictions.json` ({question id: answer}),
`nbest_predictions.json` and `eval_metrics.json` of the best checkpoint on the eval set.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import torch

from prefine.checkpoint import TOKENIZER_DIR, load_model_config, load_weights, model_checkpoint_of, read_run, write_run
from prefine.config import explicit_overrides, option
from prefine.errors import PrefineError
from prefine.metrics.squad import Flavor
from prefine.model import BertForQuestionAnswering, config_from_dict
from prefine.recipes.common import check_tokenizer_matches, load_initial_weights, recorded_finetune, run_record, start_finetune, with_finetune_learning_rate
from prefine.tasks.qa_data import QAExample, QAFeatures, decode_predictions, load_squad_json, prepare_features
from prefine.tasks.question_answering import DecodingConfig, QABatches, QAEvaluation, QATask, evaluate_qa, predict_span_logits
from prefine.tokenizer import load_tokenizer, save_tokenizer, tokenizer_fingerprint
from prefine.training import TrainingConfig, resolve_device, train

if TYPE_CHECKING:  # finetune.py imports this module to route --task qa; a runtime import would be circular
    from prefine.recipes.finetune import FinetuneRunConfig

PREDICTIONS_FILE = "predictions.json"
NBEST_FILE = "nbest_predictions.json"
EVAL_METRICS_FILE = "eval_metrics.json"


@dataclass
class QADataConfig:
    max_length: int = option(384, "QA: tokens per window, [CLS] question [SEP] context [SEP] (BERT's max_seq_length)")
    doc_stride: int = option(128, "QA: tokens between the starts of consecutive windows of a long context (Google BERT's meaning)")
    max_query_length: int = option(64, "QA: questions are cut to this many tokens")
    n_best_size: int = option(20, "QA: start and end candidates per window considered when decoding an answer")
    max_answer_length: int = option(30, "QA: longest answer in tokens")
    null_score_diff_threshold: float = option(0.0, "QA (SQuAD v2.0): answer \"\" when the no-answer score beats the best span by more than this")
    metric: Literal["auto", "squad", "squad_v2", "korquad"] = option(
        "auto", "QA: official script to score with; auto reads the eval file's version (KorQuAD_v1.0 -> korquad, v2.0 or is_impossible -> squad_v2)"
    )

    def __post_init__(self) -> None:
        if self.doc_stride < 1 or self.max_query_length < 1 or self.n_best_size < 1 or self.max_answer_length < 1:
            raise PrefineError("--doc-stride, --max-query-length, --n-best-size and --max-answer-length must be at least 1")
        if self.max_length - self.max_query_length - 3 < 1:
            raise PrefineError(
                f"--max-length {self.max_length} leaves no room for context after a {self.max_query_length}-token question; "
                "raise --max-length or lower --max-query-length"
            )

    def decoding(self, version_2: bool) -> DecodingConfig:
        return DecodingConfig(self.n_best_size, self.max_answer_length, self.null_score_diff_threshold, version_2)


def reject_flags_of(args: argparse.Namespace, config_class: type, task: str) -> None:
    """A flag of the other task would be silently ignored; say so instead (e.g. --max-seq-length with --task qa)."""
    given = explicit_overrides(args, config_class)
    if given:
        flags = ", ".join("--" + name.replace("_", "-") for name in given)
        raise PrefineError(f"{task} does not use {flags}; drop it (QA windows are sized by --max-length, classification inputs by --max-seq-length)")


def resolve_flavor(configured: str, detected: Flavor) -> Flavor:
    return detected if configured == "auto" else configured  # type: ignore[return-value]


def _features(examples: list[QAExample], tokenizer, data: QADataConfig, for_training: bool) -> QAFeatures:
    return prepare_features(examples, tokenizer, data.max_length, data.doc_stride, data.max_query_length, for_training=for_training)


def _load_qa_file(path: str, what: str) -> tuple[list[QAExample], Flavor]:
    examples, flavor, report = load_squad_json(path)
    if not examples:
        raise PrefineError(f"{path} holds no questions; point {what} at a SQuAD-format file with data")
    if report.mismatched:
        print(f"{path}: {report.summary()}", file=sys.stderr)
    return examples, flavor


def _subsample(examples: list[QAExample], fraction: float, seed: int) -> list[QAExample]:
    if fraction >= 1.0:
        return examples
    if fraction <= 0.0:
        raise PrefineError(f"--train-fraction {fraction} must be above 0")
    count = max(1, round(len(examples) * fraction))
    chosen = np.sort(np.random.default_rng([seed, 1234]).permutation(len(examples))[:count])
    return [examples[index] for index in chosen]


def write_qa_outputs(directory: Path, evaluation: QAEvaluation) -> None:
    """predictions.json (the official {id: answer} input of the scoring scripts), n-best lists, scores."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, payload in ((PREDICTIONS_FILE, evaluation.predictions), (NBEST_FILE, evaluation.n_best), (EVAL_METRICS_FILE, evaluation.scores)):
        (directory / name).write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def format_qa_scores(scores: dict[str, float], flavor: str) -> str:
    lines = [f"{flavor} on {int(scores['total'])} questions: exact match {scores['exact_match']:.2f}  F1 {scores['f1']:.2f}"]
    for group, meaning in (("HasAns", "answerable"), ("NoAns", "unanswerable")):
        if f"{group}_total" in scores:
            lines.append(
                f"  {meaning} ({int(scores[group + '_total'])}): exact match {scores[group + '_exact_match']:.2f}  F1 {scores[group + '_f1']:.2f}"
            )
    if scores.get("missing_predictions"):
        lines.append(f"  {int(scores['missing_predictions'])} questions got no prediction (scored 0)")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# finetune --task qa


def run_qa_finetune(run: FinetuneRunConfig, qa_data: QADataConfig, training: TrainingConfig, explicit_steps: bool) -> dict:
    run_dir, context, init = start_finetune(run, training.device, qa_data.max_length, "--max-length", "--train FILE.json (SQuAD format)")
    training = with_finetune_learning_rate(training, init.config)
    tokenizer = init.tokenizer

    train_examples, train_flavor = _load_qa_file(run.train, "--train")
    train_examples = _subsample(train_examples, run.train_fraction, training.seed)
    train_features = _features(train_examples, tokenizer, qa_data, for_training=True)
    if train_features.skipped_example_ids:
        print(f"{run.train}: {len(train_features.skipped_example_ids)} questions without a usable answer span are left out of training", file=sys.stderr)
    # A model trained on unanswerable questions has learned when to point at [CLS]; only then may it answer "".
    allows_no_answer = train_flavor == "squad_v2"
    eval_examples = eval_features = None
    flavor: Flavor = resolve_flavor(qa_data.metric, train_flavor)
    if run.eval:
        eval_examples, eval_flavor = _load_qa_file(run.eval, "--eval")
        flavor = resolve_flavor(qa_data.metric, eval_flavor)
        eval_features = _features(eval_examples, tokenizer, qa_data, for_training=False)

    batches = QABatches(train_features, training.batch_size // training.gradient_accumulation_steps, training.seed)
    del train_features  # QABatches keeps a compact copy; the offsets are only needed for eval windows
    if not explicit_steps:
        steps = math.ceil(run.epochs * len(batches) / training.batch_size)
        training = dataclasses.replace(training, max_steps=max(steps, 1))
    if not training.best_metric and eval_examples is not None:
        training = dataclasses.replace(training, best_metric="f1")

    torch.manual_seed(training.seed)
    model = BertForQuestionAnswering(init.config)
    load_initial_weights(model, init, run.from_scratch, announce=context.is_main, reinit_layers=run.reinit_layers)

    if context.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_tokenizer(tokenizer, run_dir / TOKENIZER_DIR, model_max_length=qa_data.max_length)
    fingerprint = tokenizer_fingerprint(tokenizer)
    checkpoint_config = {
        **dataclasses.asdict(init.config),
        "model_type": "bert",
        "architectures": ["BertForQuestionAnswering"],
        "tokenizer_fingerprint": fingerprint,
        "max_seq_length": qa_data.max_length,
        "qa_data": dataclasses.asdict(qa_data),
        "allows_no_answer": allows_no_answer,
    }
    record = run_record(
        "finetune",
        task="qa",
        run=run,
        data=qa_data,
        training=training,
        flavor=flavor,
        allows_no_answer=allows_no_answer,
        model=init.config,
        init=init.description,
        num_train_examples=len(train_examples),
        num_train_windows=len(batches),
    )
    if context.is_main:
        write_run(run_dir, record)
        print(
            f"fine-tuning QA on {len(train_examples)} questions ({len(batches)} windows of up to {qa_data.max_length} tokens), "
            f"{training.max_steps} steps of {training.batch_size} at learning rate {training.learning_rate:g}; scored as {flavor}"
        )
    task = QATask(batches, eval_examples, eval_features, flavor, qa_data.decoding(allows_no_answer), run.eval_batch_size, context.device)
    with recorded_finetune(run, run_dir, init, record, fingerprint, context.is_main) as handle:
        result = train(model, task, training, run_dir, checkpoint_config, context)
        if eval_examples is None or eval_features is None:
            return result.last_eval
        # Score the checkpoint the run hands on (the best by --best-metric), not the last step's weights.
        loaded = load_qa_finetuned(run_dir, context.device)
        evaluation = evaluate_qa(loaded.model, eval_examples, eval_features, flavor, task.decoding, run.eval_batch_size, context.device)
        if context.is_main:
            write_qa_outputs(run_dir, evaluation)
            print(f"best checkpoint ({training.best_metric}): {model_checkpoint_of(run_dir).name}")
            print(format_qa_scores(evaluation.scores, flavor))
            print(f"answers: {run_dir / PREDICTIONS_FILE}")
        key = training.best_metric
        handle.set_metrics(evaluation.metrics, (f"eval/{key}", float(evaluation.metrics[key])))
    return evaluation.scores


# ---------------------------------------------------------------------------------------------
# loading a fine-tuned QA run (evaluate / predict)


@dataclass
class QAFinetunedModel:
    model: BertForQuestionAnswering
    tokenizer: object
    data: QADataConfig
    flavor: Flavor  # how the run's own eval set was scored
    allows_no_answer: bool


def load_qa_finetuned(run_dir: Path, device: torch.device) -> QAFinetunedModel:
    saved = read_run(run_dir)
    if saved.get("kind") != "finetune" or saved.get("task") != "qa":
        raise PrefineError(f"{run_dir} is not a fine-tuned QA run; pass the --out folder of prefine finetune --task qa")
    checkpoint = model_checkpoint_of(run_dir)
    config = config_from_dict(load_model_config(checkpoint), str(checkpoint / "config.json"))
    tokenizer = load_tokenizer(run_dir / TOKENIZER_DIR)
    check_tokenizer_matches(tokenizer, config, run_dir / TOKENIZER_DIR, checkpoint)
    model = BertForQuestionAnswering(config)
    model.load_state_dict(load_weights(checkpoint))
    model.to(device).eval()
    return QAFinetunedModel(model, tokenizer, QADataConfig(**saved["data"]), saved["flavor"], bool(saved["allows_no_answer"]))


def evaluate_from_args(args: argparse.Namespace) -> int:
    device = resolve_device("auto")
    loaded = load_qa_finetuned(Path(args.run), device)
    examples, detected = _load_qa_file(args.data, "--data")
    flavor = resolve_flavor(loaded.data.metric, detected)
    features = _features(examples, loaded.tokenizer, loaded.data, for_training=False)
    # v2.0 data asks the model to abstain; a v1.1-trained model then abstains only when [CLS] wins.
    decoding = loaded.data.decoding(loaded.allows_no_answer or flavor == "squad_v2")
    evaluation = evaluate_qa(loaded.model, examples, features, flavor, decoding, args.batch_size, device)
    print(format_qa_scores(evaluation.scores, flavor))
    print(json.dumps(evaluation.scores, ensure_ascii=False))
    return 0


def read_questions(path: str) -> list[QAExample]:
    """Questions of a SQuAD-format file to answer; unlike training data they need no answers."""
    source = Path(path)
    if not source.is_file():
        raise PrefineError(f"QA data file {path} does not exist; pass the path of a SQuAD-format JSON file")
    try:
        dataset = json.loads(source.read_bytes().decode("utf-8-sig"))
    except UnicodeDecodeError as error:
        raise PrefineError(f"{path} is not UTF-8 (byte {error.start}); re-save it as UTF-8") from None
    except json.JSONDecodeError as error:
        raise PrefineError(f"{path} is not valid JSON ({error.msg} at line {error.lineno}); check the file") from None
    examples = []
    try:
        for article in dataset["data"]:
            for paragraph in article["paragraphs"]:
                for qa in paragraph["qas"]:
                    examples.append(QAExample(str(qa["id"]), str(qa["question"]), str(paragraph["context"]), []))
    except (KeyError, TypeError) as error:
        raise PrefineError(f"{path} is not in SQuAD format (data[].paragraphs[].context and .qas[].id/question; missing {error})") from None
    if not examples:
        raise PrefineError(f"{path} holds no questions; point --data at a SQuAD-format file with data")
    return examples


def predict_from_args(args: argparse.Namespace) -> int:
    device = resolve_device("auto")
    loaded = load_qa_finetuned(Path(args.run), device)
    single = args.question is not None or args.context is not None
    if single:
        if not args.question or not args.context:
            raise PrefineError("pass both --question and --context (or --data FILE.json with many questions)")
        if args.data != "-":
            raise PrefineError("pass either --question/--context or --data FILE.json, not both")
        examples = [QAExample("question", args.question, args.context, [])]
    elif args.data == "-":
        raise PrefineError("this run answers questions: pass --question \"...\" --context \"...\", or --data FILE.json (SQuAD format)")
    else:
        examples = read_questions(args.data)
    features = _features(examples, loaded.tokenizer, loaded.data, for_training=False)
    predictions, n_best = answer_questions(loaded, examples, features, args.batch_size, device)
    if single:
        print(predictions["question"])
        for entry in n_best["question"][: args.nbest]:
            print(f"{entry['probability']:.4f}\t{entry['text'] or '(no answer)'}")
        return 0
    payload = {key: entries[: args.nbest] for key, entries in n_best.items()} if args.nbest else predictions
    text = json.dumps(payload, indent=2, ensure_ascii=False) + "\n"
    if args.output == "-":
        sys.stdout.write(text)
    else:
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"{len(predictions)} answers written to {args.output}", file=sys.stderr)
    return 0


def answer_questions(
    loaded: QAFinetunedModel, examples: list[QAExample], features: QAFeatures, batch_size: int, device: torch.device
) -> tuple[dict[str, str], dict[str, list[dict]]]:
    """(answers, n-best lists) by question id, for questions without gold answers."""
    start_logits, end_logits, _ = predict_span_logits(loaded.model, features, batch_size, device)
    decoding = loaded.data.decoding(loaded.allows_no_answer)
    return decode_predictions(
        examples, features, start_logits, end_logits, decoding.n_best_size, decoding.max_answer_length,
        decoding.null_score_diff_threshold, decoding.version_2,
    )
