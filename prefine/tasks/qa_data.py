"""Extractive QA data: SQuAD/KorQuAD JSON in, doc-stride token windows out, answer spans decoded back.

The pipeline has three steps:

1. `load_squad_json` reads SQuAD v1.1, SQuAD v2.0, KorQuAD 1.0 or KLUE-MRC files (the SQuAD
   layout with a question's id under "guid" and unanswerable questions) into `QAExample`s and
   checks every gold answer against its context. Public QA sets contain answers whose
   `answer_start` points at the wrong place; training on them teaches the model wrong spans,
   so they are counted in an `AnswerCheckReport` and left out of training, never repaired by
   guessing nearby offsets.
2. `prepare_features` encodes questions (segment A) and contexts (segment B) with a fast
   `tokenizers.Tokenizer` and cuts long contexts into overlapping windows, because an encoder
   only sees `max_length` tokens and the answer may be anywhere in the document. Character
   offsets from the tokenizer map answers to token spans in both directions, so Korean
   particles glued to an answer ("세종대왕은") or irregular whitespace need no special rules.
3. `decode_predictions` turns start/end logits of every window into the best character span of
   the original context, merging the windows of one question.

`split_squad_dataset` carves a dev split out of a training file for checkpoint selection. It
holds out whole articles, not questions: the questions of a paragraph share its context, so a
question-level split would put the same context on both sides and flatter the selection score.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tokenizers import Tokenizer

from prefine.errors import PrefineError
from prefine.metrics.squad import NO_ANSWER_FLAVORS, Flavor, detect_flavor
from prefine.tasks.selection import PASS_DEV_AND_TEST, stratified_dev_indices
from prefine.tokenizer import copy_tokenizer

# How many mismatched answers the report quotes; the count covers all of them.
_REPORTED_MISMATCHES = 5


@dataclass(frozen=True)
class QAExample:
    """One question about one context; `answers` is [{"text", "answer_start"}], empty if impossible."""

    id: str
    question: str
    context: str
    answers: list[dict]
    is_impossible: bool = False


@dataclass
class AnswerCheckReport:
    """Gold answers whose text is not found at `answer_start` in their context."""

    total_answers: int = 0
    mismatched: int = 0
    examples: list[dict] = field(default_factory=list)  # first few: id, text, answer_start, found
    unusable_question_ids: list[str] = field(default_factory=list)  # every answer mismatched

    def summary(self) -> str:
        if not self.mismatched:
            return f"All {self.total_answers} answers match their context."
        quoted = "; ".join(
            f"{item['id']}: {item['text']!r} at {item['answer_start']} but context has {item['found']!r}" for item in self.examples
        )
        return (
            f"{self.mismatched} of {self.total_answers} answers do not match context[answer_start:]; "
            f"{len(self.unusable_question_ids)} questions without a matching answer are skipped in training. "
            f"e.g. {quoted}"
        )


def answer_matches_context(context: str, answer: dict) -> bool:
    """True when the answer text occurs exactly at its answer_start (no off-by-one repair)."""
    start = answer["answer_start"]
    return 0 <= start and context[start : start + len(answer["text"])] == answer["text"]


def _require(mapping: object, key: str, where: str) -> object:
    if not isinstance(mapping, dict) or key not in mapping:
        raise PrefineError(f"{where} has no {key!r} key; the file is not in SQuAD format (data[].paragraphs[].qas[]).")
    return mapping[key]


def _question_id(qa: object, where: str) -> str:
    """A question's id: SQuAD's "id", or KLUE-MRC's "guid"."""
    if isinstance(qa, dict) and "id" not in qa and "guid" in qa:
        return str(qa["guid"])
    if isinstance(qa, dict) and "id" not in qa:
        raise PrefineError(f"{where} has no 'id' key (nor KLUE-MRC's 'guid'); every question needs an id, as in SQuAD or KLUE-MRC files.")
    return str(_require(qa, "id", where))


def _require_list(mapping: object, key: str, where: str) -> list[object]:
    value = _require(mapping, key, where)
    if not isinstance(value, list):
        raise PrefineError(f"{where}: {key!r} must be a list, not a JSON {type(value).__name__}; the file is not in SQuAD format.")
    return value


def _require_str(mapping: object, key: str, where: str) -> str:
    value = _require(mapping, key, where)
    if not isinstance(value, str):
        raise PrefineError(f"{where}: {key!r} must be a string, not a JSON {type(value).__name__}; the file is not in SQuAD format.")
    return value


def _parse_answer(answer: object, where: str) -> dict:
    text = _require(answer, "text", where)
    start = _require(answer, "answer_start", where)
    if not isinstance(text, str) or isinstance(start, bool) or not isinstance(start, int):
        raise PrefineError(f"{where} must have a string 'text' and an integer 'answer_start'.")
    return {"text": text, "answer_start": start}


def read_json_file(path: Path) -> Any:
    """A UTF-8 (optionally BOM-prefixed) JSON file, with one-line errors naming the problem."""
    if not path.is_file():
        raise PrefineError(f"QA data file {path} does not exist; pass the path of a SQuAD-format JSON file.")
    try:
        return json.loads(path.read_bytes().decode("utf-8-sig"))
    except UnicodeDecodeError as error:
        raise PrefineError(f"{path} is not UTF-8 (byte {error.start}); re-save it as UTF-8.") from None
    except json.JSONDecodeError as error:
        raise PrefineError(f"{path} is not valid JSON ({error.msg} at line {error.lineno}); check the file.") from None


def read_questions(path: str | Path) -> list[QAExample]:
    """Questions of a SQuAD-format file to answer; unlike training data they need no answers."""
    dataset = read_json_file(Path(path))
    examples = []
    try:
        for article in dataset["data"]:
            for paragraph in article["paragraphs"]:
                for qa in paragraph["qas"]:
                    question_id = qa["id"] if "id" in qa or "guid" not in qa else qa["guid"]
                    examples.append(QAExample(str(question_id), str(qa["question"]), str(paragraph["context"]), []))
    except (KeyError, TypeError) as error:
        raise PrefineError(f"{path} is not in SQuAD format (data[].paragraphs[].context and .qas[].id/question; missing {error})") from None
    if not examples:
        raise PrefineError(f"{path} holds no questions; point --data at a SQuAD-format file with data")
    return examples


def load_squad_json(path: str | Path) -> tuple[list[QAExample], Flavor, AnswerCheckReport]:
    """Read a SQuAD v1.1 / v2.0, KorQuAD 1.0 or KLUE-MRC file; returns examples, its flavor and the answer check."""
    path = Path(path)
    dataset_json = read_json_file(path)
    if not isinstance(dataset_json, dict):
        raise PrefineError(f"{path} holds a JSON {type(dataset_json).__name__}, not a SQuAD object with a 'data' list.")

    articles = _require(dataset_json, "data", str(path))
    if not isinstance(articles, list):
        raise PrefineError(f"{path}: 'data' must be a list of articles.")
    flavor = detect_flavor(dataset_json)
    examples: list[QAExample] = []
    report = AnswerCheckReport()
    for article_number, article in enumerate(articles):
        paragraphs = _require_list(article, "paragraphs", f"{path}: data[{article_number}]")
        for paragraph_number, paragraph in enumerate(paragraphs):
            where = f"{path}: data[{article_number}].paragraphs[{paragraph_number}]"
            context = _require_str(paragraph, "context", where)
            for qa_number, qa in enumerate(_require_list(paragraph, "qas", where)):
                qa_where = f"{where}.qas[{qa_number}]"
                question_id = _question_id(qa, qa_where)
                question = _require_str(qa, "question", qa_where)
                raw_answers = _require_list(qa, "answers", qa_where)
                answers = [_parse_answer(a, f"{qa_where}.answers[{i}]") for i, a in enumerate(raw_answers)]
                # Always a dict here (_require found its keys); the check tells the type checker so.
                is_impossible = isinstance(qa, dict) and bool(qa.get("is_impossible", False))
                if is_impossible:
                    answers = []  # v2 keeps its "plausible" answers elsewhere; none is a gold answer
                elif not answers:
                    if flavor not in NO_ANSWER_FLAVORS:
                        raise PrefineError(
                            f"{qa_where} (id {question_id}) has no answers; a {flavor} file needs at least one "
                            "per question (mark unanswerable ones with is_impossible, SQuAD v2.0 style)."
                        )
                    is_impossible = True
                examples.append(QAExample(question_id, question, context, answers, is_impossible))
                _check_answers(examples[-1], report)
    return examples, flavor, report


def _check_answers(example: QAExample, report: AnswerCheckReport) -> None:
    matches = [answer_matches_context(example.context, answer) for answer in example.answers]
    report.total_answers += len(matches)
    for answer, matched in zip(example.answers, matches):
        if matched:
            continue
        report.mismatched += 1
        if len(report.examples) < _REPORTED_MISMATCHES:
            start = answer["answer_start"]
            found = example.context[max(start, 0) : max(start, 0) + len(answer["text"])]
            report.examples.append({"id": example.id, "text": answer["text"], "answer_start": start, "found": found})
    if matches and not any(matches):
        report.unusable_question_ids.append(example.id)


@dataclass
class SquadSplit:
    """A SQuAD-format dataset cut in two: each part the original object with only its own articles or paragraphs."""

    train: dict[str, Any]
    dev: dict[str, Any]
    num_train: int  # questions
    num_dev: int
    grouped_by: str  # "article", or "paragraph" when the file has too few articles (see `split_squad_dataset`)
    num_groups: int  # articles (or paragraphs) the split chose among


def _question_count(paragraph: dict) -> int:
    return len(paragraph["qas"])


def _article_groups(articles: list[dict]) -> list[list[int]]:
    """Article indices grouped so that no title and no context spans two groups, in file order.

    Entries with the same title are one document (a Wikipedia page cut into entries), and an
    entry without a title is its own. Entries sharing a context are merged too: the leak a
    grouped split prevents is a context seen on both sides, whatever the titles say.
    """
    parent = list(range(len(articles)))

    def root(index: int) -> int:
        while parent[index] != index:
            parent[index] = parent[parent[index]]
            index = parent[index]
        return index

    first_with: dict[tuple[str, str], int] = {}
    for index, article in enumerate(articles):
        title = article.get("title")
        keys = [("title", title)] if isinstance(title, str) and title.strip() else []
        keys += [("context", paragraph["context"]) for paragraph in article["paragraphs"]]
        for key in keys:
            if key in first_with:
                parent[root(index)] = root(first_with[key])
            else:
                first_with[key] = index
    groups: dict[int, list[int]] = {}
    for index in range(len(articles)):
        groups.setdefault(root(index), []).append(index)
    return sorted(groups.values(), key=lambda members: members[0])


def split_squad_dataset(dataset_json: dict[str, Any], fraction: float, seed: int, source: str = "--train") -> SquadSplit:
    """Hold out a seeded `fraction` of a SQuAD-format dataset's articles (see `_article_groups`) as the dev part.

    `round(fraction * articles)` articles go to dev (`selection.stratified_dev_indices`, so the
    seeding matches every other task's split), which holds out about `fraction` of the questions.
    When that rounds to no article, or the file is one article, the split falls back to
    paragraphs, grouped by context so that no context is on both sides; `grouped_by` says which
    was used. Articles and paragraphs without questions stay in training (a dev part must have
    something to score). Every other key (version, title, KLUE-MRC's guid/question_type/
    news_category, ...) is kept, so each part is read and scored exactly like the original file.
    The counts are questions, as `load_squad_json` reads them.
    """
    articles = dataset_json["data"]
    article_groups = [
        group for group in _article_groups(articles) if any(_question_count(p) for index in group for p in articles[index]["paragraphs"])
    ]
    # Places are (article, paragraph) pairs; a group of places goes to one side whole.
    groups = [[(index, number) for index in group for number in range(len(articles[index]["paragraphs"]))] for group in article_groups]
    grouped_by = "article"
    # A fraction of too few articles rounds to none: split by paragraph instead (the caller says so).
    if len(groups) < 2 or int(round(len(groups) * fraction)) < 1:
        grouped_by = "paragraph"
        by_context: dict[str, list[tuple[int, int]]] = {}
        for index, article in enumerate(articles):
            for number, paragraph in enumerate(article["paragraphs"]):
                if _question_count(paragraph):
                    by_context.setdefault(paragraph["context"], []).append((index, number))
        groups = list(by_context.values())
        if len(groups) < 2:
            raise PrefineError(
                f"{source} asks all its questions about one context, so any dev split would share it with training; {PASS_DEV_AND_TEST}"
            )
    dev_groups, _ = stratified_dev_indices(None, len(groups), fraction, seed)
    in_dev = {place for group in dev_groups.tolist() for place in groups[group]}
    sides: tuple[list[dict], list[dict]] = ([], [])
    for index, article in enumerate(articles):
        for side, to_dev in zip(sides, (False, True)):
            kept = [p for number, p in enumerate(article["paragraphs"]) if ((index, number) in in_dev) == to_dev]
            if kept:
                # The article itself when it goes whole, so every key it has is written back unchanged.
                side.append(article if len(kept) == len(article["paragraphs"]) else {**article, "paragraphs": kept})
    train, dev = ({**dataset_json, "data": side} for side in sides)
    num_train, num_dev = (sum(_question_count(p) for article in side for p in article["paragraphs"]) for side in sides)
    return SquadSplit(train, dev, num_train, num_dev, grouped_by, len(groups))


@dataclass
class QAFeatures:
    """Model inputs, one row per window. Shapes: N windows, L = max_length tokens.

    input_ids, token_type_ids, attention_mask: [N, L] int64, "[CLS] question [SEP] context [SEP]".
    start_positions, end_positions: [N] int64 token indices of the answer; 0 ([CLS]) when the
        window does not contain the whole answer or the question is unanswerable.
    example_index: [N] int64 index into the examples list given to `prepare_features`.
    offsets: [N, L, 2] int32 character span in the context of each context token; (-1, -1) for
        question, special and padding tokens.
    skipped_example_ids: training only: questions left out because no gold answer matches its
        context (see `AnswerCheckReport`) or the answer falls between tokens.
    """

    input_ids: np.ndarray
    token_type_ids: np.ndarray
    attention_mask: np.ndarray
    start_positions: np.ndarray
    end_positions: np.ndarray
    example_index: np.ndarray
    offsets: np.ndarray
    skipped_example_ids: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.input_ids)


def _pair_template(tokenizer: Tokenizer) -> tuple[int, int, int]:
    """[CLS], first [SEP] and second [SEP] ids, read from the tokenizer's own post-processor."""
    empty_pair = tokenizer.encode("", "", add_special_tokens=True)
    if len(empty_pair.ids) != 3 or empty_pair.type_ids != [0, 0, 1]:
        raise PrefineError(
            "The tokenizer's post-processor does not produce '[CLS] $A [SEP] $B:1 [SEP]:1' for a pair; "
            "use a BERT-style tokenizer (prefine tokenizer training sets this template)."
        )
    cls_id, sep_id, second_sep_id = empty_pair.ids
    return cls_id, sep_id, second_sep_id


def _window_starts(num_context_tokens: int, window_length: int, doc_stride: int) -> list[int]:
    """Google BERT's doc-stride: windows start `doc_stride` tokens apart until one reaches the end."""
    starts = [0]
    while starts[-1] + window_length < num_context_tokens:
        starts.append(starts[-1] + min(window_length, doc_stride))
    return starts


def _answer_token_span(example: QAExample, context_offsets: np.ndarray) -> tuple[int, int] | None:
    """Context-token span of the first answer that matches its context, or None if there is none."""
    for answer in example.answers:
        if not answer_matches_context(example.context, answer):
            continue
        start_char = answer["answer_start"]
        end_char = start_char + len(answer["text"])
        # First token ending after the answer's first character, last token starting before its end.
        start_token = int(np.searchsorted(context_offsets[:, 1], start_char, side="right"))
        end_token = int(np.searchsorted(context_offsets[:, 0], end_char, side="left")) - 1
        if start_token <= end_token:
            return start_token, end_token
    return None


def prepare_features(
    examples: list[QAExample],
    tokenizer: Tokenizer,
    max_length: int = 384,
    doc_stride: int = 128,
    max_query_length: int = 64,
    for_training: bool = True,
) -> QAFeatures:
    """Encode examples into "[CLS] question [SEP] context-window [SEP]" rows with answer targets.

    The question keeps its first `max_query_length` tokens. The context is cut into windows of
    `max_length - question tokens - 3` tokens whose starts are `doc_stride` tokens apart: Google
    BERT's (and transformers' old run_squad) meaning of doc_stride, the step between window
    starts; transformers' run_qa.py passes the same number as the *overlap* instead. Windows
    overlap when doc_stride < window length, so an answer cut by one window lies whole in a later one.
    A window that does not contain the whole answer targets [CLS] (index 0).

    With `for_training`, questions whose gold answers all fail the context check (or fall
    between tokens) get no windows and are listed in `skipped_example_ids`; otherwise every
    example gets windows so each question receives a prediction.
    """
    if max_query_length < 1 or doc_stride < 1:
        raise PrefineError("max_query_length and doc_stride must be at least 1 token.")
    if max_length - max_query_length - 3 < 1:
        raise PrefineError(
            f"max_length {max_length} leaves no room for context after a {max_query_length}-token question "
            "and 3 special tokens; raise max_length or lower max_query_length."
        )
    # A private copy: encoding must not be truncated or padded by settings saved in the tokenizer,
    # and the caller's tokenizer must not change.
    tokenizer = copy_tokenizer(tokenizer)
    tokenizer.no_truncation()
    tokenizer.no_padding()
    cls_id, sep_id, second_sep_id = _pair_template(tokenizer)
    pad_id = tokenizer.token_to_id("[PAD]")
    pad_id = 0 if pad_id is None else pad_id

    questions = tokenizer.encode_batch([example.question for example in examples], add_special_tokens=False)
    # SQuAD asks about five questions per paragraph: encode each distinct context once.
    context_number = {context: i for i, context in enumerate(dict.fromkeys(e.context for e in examples))}
    encoded_contexts = [
        (np.asarray(encoding.ids, dtype=np.int64), np.asarray(encoding.offsets, dtype=np.int32).reshape(-1, 2))
        for encoding in tokenizer.encode_batch(list(context_number), add_special_tokens=False)
    ]

    rows: list[tuple[int, np.ndarray, np.ndarray, np.ndarray, int, int]] = []
    skipped: list[str] = []
    for example_number, (example, question) in enumerate(zip(examples, questions)):
        question_ids = np.asarray(question.ids[:max_query_length], dtype=np.int64)
        context_ids, context_offsets = encoded_contexts[context_number[example.context]]
        answer_span = None if example.is_impossible else _answer_token_span(example, context_offsets)
        if for_training and not example.is_impossible and answer_span is None:
            skipped.append(example.id)
            continue
        window_length = max_length - len(question_ids) - 3
        context_begin = len(question_ids) + 2  # row index of the first context token
        for window_start in _window_starts(len(context_ids), window_length, doc_stride):
            window_end = min(window_start + window_length, len(context_ids))  # exclusive
            start_position = end_position = 0
            if answer_span is not None and window_start <= answer_span[0] and answer_span[1] < window_end:
                start_position = context_begin + answer_span[0] - window_start
                end_position = context_begin + answer_span[1] - window_start
            rows.append(
                (
                    example_number,
                    question_ids,
                    context_ids[window_start:window_end],
                    context_offsets[window_start:window_end],
                    start_position,
                    end_position,
                )
            )

    num_rows = len(rows)
    input_ids = np.full((num_rows, max_length), pad_id, dtype=np.int64)
    token_type_ids = np.zeros((num_rows, max_length), dtype=np.int64)
    attention_mask = np.zeros((num_rows, max_length), dtype=np.int64)
    offsets = np.full((num_rows, max_length, 2), -1, dtype=np.int32)
    for row, (_, question_ids, window_ids, window_offsets, _, _) in enumerate(rows):
        begin = len(question_ids) + 2
        end = begin + len(window_ids)
        input_ids[row, 0] = cls_id
        input_ids[row, 1 : begin - 1] = question_ids
        input_ids[row, begin - 1] = sep_id
        input_ids[row, begin:end] = window_ids
        input_ids[row, end] = second_sep_id
        token_type_ids[row, begin : end + 1] = 1
        attention_mask[row, : end + 1] = 1
        offsets[row, begin:end] = window_offsets
    return QAFeatures(
        input_ids=input_ids,
        token_type_ids=token_type_ids,
        attention_mask=attention_mask,
        start_positions=np.asarray([r[4] for r in rows], dtype=np.int64),
        end_positions=np.asarray([r[5] for r in rows], dtype=np.int64),
        example_index=np.asarray([r[0] for r in rows], dtype=np.int64),
        offsets=offsets,
        skipped_example_ids=skipped,
    )


def _softmax(scores: np.ndarray) -> np.ndarray:
    exponentials = np.exp(scores - scores.max())
    return exponentials / exponentials.sum()


def decode_predictions(
    examples: list[QAExample],
    features: QAFeatures,
    start_logits: np.ndarray,
    end_logits: np.ndarray,
    n_best_size: int = 20,
    max_answer_length: int = 30,
    null_score_diff_threshold: float = 0.0,
    version_2: bool = False,
) -> tuple[dict[str, str], dict[str, list[dict]]]:
    """Best answer text per question from [N, L] start/end logits; returns (predictions, n-best lists).

    In each window the `n_best_size` highest starts and ends inside the context are paired
    (end >= start, at most `max_answer_length` tokens) and scored start_logit + end_logit.
    Candidates of all windows of a question are merged (a span seen in two windows keeps its
    best score), and the text is cut from the original context by character offsets, so it
    keeps the context's exact whitespace and characters. Each n-best entry is
    {"text", "score", "probability", "start_char", "end_char"}, probability being the softmax
    over the question's n-best scores.

    With `version_2`, the null score is the lowest [CLS] score (start_logits[0] + end_logits[0])
    over the question's windows, the null answer ("", start_char = end_char = -1) joins the
    n-best list, and "" is predicted when null score - best span score > null_score_diff_threshold.
    A question without any valid span is predicted "".
    """
    start_logits = np.asarray(start_logits, dtype=np.float64)
    end_logits = np.asarray(end_logits, dtype=np.float64)
    if start_logits.shape != features.input_ids.shape or end_logits.shape != features.input_ids.shape:
        raise ValueError(f"logits must have shape {features.input_ids.shape}, got {start_logits.shape} and {end_logits.shape}")
    num_windows, seq_length = start_logits.shape
    is_context = features.offsets[:, :, 0] >= 0
    top = min(n_best_size, seq_length)

    # Top-k starts and ends per window among context tokens only, then all k x k pairs at once.
    def top_context_tokens(logits: np.ndarray) -> np.ndarray:
        masked = np.where(is_context, logits, -np.inf)
        return np.argsort(-masked, axis=1, kind="stable")[:, :top]

    start_tokens = top_context_tokens(start_logits)[:, :, None]  # [N, k, 1]
    end_tokens = top_context_tokens(end_logits)[:, None, :]  # [N, 1, k]
    windows = np.arange(num_windows)[:, None, None]
    valid = (
        is_context[windows, start_tokens]
        & is_context[windows, end_tokens]
        & (end_tokens >= start_tokens)
        & (end_tokens - start_tokens + 1 <= max_answer_length)
    )
    window_of, start_slot, end_slot = np.nonzero(valid)
    span_start = start_tokens[window_of, start_slot, 0]
    span_end = end_tokens[window_of, 0, end_slot]
    candidate_scores = start_logits[window_of, span_start] + end_logits[window_of, span_end]
    candidate_example = features.example_index[window_of]
    candidate_start_char = features.offsets[window_of, span_start, 0].astype(np.int64)
    candidate_end_char = features.offsets[window_of, span_end, 1].astype(np.int64)

    # The same character span found in two overlapping windows counts once, with its best score.
    order = np.lexsort((-candidate_scores, candidate_end_char, candidate_start_char, candidate_example))
    keys = np.stack([candidate_example, candidate_start_char, candidate_end_char], axis=1)[order]
    first_of_span = np.ones(len(order), dtype=bool)
    first_of_span[1:] = np.any(keys[1:] != keys[:-1], axis=1)
    order = order[first_of_span]
    order = order[np.lexsort((-candidate_scores[order], candidate_example[order]))]
    sorted_examples = candidate_example[order]

    null_scores = np.full(len(examples), np.inf)
    np.minimum.at(null_scores, features.example_index, start_logits[:, 0] + end_logits[:, 0])

    predictions: dict[str, str] = {}
    n_best: dict[str, list[dict]] = {}
    for example_number in np.unique(features.example_index):
        example = examples[example_number]
        first = np.searchsorted(sorted_examples, example_number, side="left")
        last = np.searchsorted(sorted_examples, example_number, side="right")
        chosen = order[first : min(last, first + n_best_size)]
        entries = [
            {
                "text": example.context[candidate_start_char[i] : candidate_end_char[i]],
                "score": float(candidate_scores[i]),
                "start_char": int(candidate_start_char[i]),
                "end_char": int(candidate_end_char[i]),
            }
            for i in chosen
        ]
        best_text = entries[0]["text"] if entries else ""
        if version_2:
            null_score = float(null_scores[example_number])
            if not entries or null_score - entries[0]["score"] > null_score_diff_threshold:
                best_text = ""
            entries.append({"text": "", "score": null_score, "start_char": -1, "end_char": -1})
            entries.sort(key=lambda entry: -entry["score"])
        if entries:
            probabilities = _softmax(np.asarray([entry["score"] for entry in entries]))
            for entry, probability in zip(entries, probabilities):
                entry["probability"] = float(probability)
        predictions[example.id] = best_text
        n_best[example.id] = entries
    return predictions, n_best
