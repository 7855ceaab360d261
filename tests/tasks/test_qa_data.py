"""SQuAD/KorQuAD loading, doc-stride windows with answer targets, span decoding back to text, and dev splits by article."""

import json

import numpy as np
import pytest
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

from prefine.errors import PrefineError
from prefine.tasks.qa_data import QAExample, decode_predictions, load_squad_json, prepare_features, read_questions, split_squad_dataset

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
ENGLISH = [
    "The cat sat on the mat near the old red barn.",
    "Paris is the capital and largest city of France.",
    "Where did the cat sit? Who built the barn? What is the capital of France?",
    "He moved to New York City in those days.",
]
KOREAN = [
    "세종대왕은 1443년에 훈민정음을 창제하였다.",
    "한글은 조선의 백성을 위한 글자이다.",
    "누가 훈민정음을 창제하였는가? 한글은 누구를 위한 글자인가?",
]
# Whole-word pieces for English and Korean stems without their particles, so "세종대왕은"
# tokenizes as 세종대왕 ##은 the way a trained Korean vocabulary splits particles.
KOREAN_STEMS = ["세종대왕", "훈민정음", "한글", "조선", "백성", "창제", "글자", "누구", "누가"]


def _bert_pipeline(model) -> Tokenizer:
    tokenizer = Tokenizer(model)
    # Lowercasing without accent stripping: offsets must still point into the original, cased text.
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True, strip_accents=False)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece()
    return tokenizer


def _add_pair_template(tokenizer: Tokenizer) -> Tokenizer:
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", tokenizer.token_to_id("[CLS]")), ("[SEP]", tokenizer.token_to_id("[SEP]"))],
    )
    return tokenizer


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    """A WordPiece tokenizer whose vocabulary is built from the sentences, not trained.

    The WordPiece trainer can return different vocabularies for the same corpus (see the field
    notes), and whether it keeps "세종대왕은" whole decides whether an answer ending before the
    particle is reachable; a built vocabulary keeps these tests deterministic.
    """
    text = " ".join(ENGLISH + KOREAN).lower()
    characters = sorted(set(text) - {" "})
    words = sorted({word.strip(".,?") for word in " ".join(ENGLISH).lower().split()})
    vocab_list = SPECIALS + characters + [f"##{c}" for c in characters] + words + KOREAN_STEMS
    vocab = {piece: index for index, piece in enumerate(dict.fromkeys(vocab_list))}
    return _add_pair_template(_bert_pipeline(models.WordPiece(vocab, unk_token="[UNK]")))


@pytest.fixture(scope="module")
def trained_tokenizer() -> Tokenizer:
    """A WordPiece tokenizer trained in-process, as prefine's tokenizer stage produces one."""
    tokenizer = _bert_pipeline(models.WordPiece(unk_token="[UNK]"))
    tokenizer.train_from_iterator(ENGLISH + KOREAN, trainers.WordPieceTrainer(vocab_size=300, special_tokens=SPECIALS))
    return _add_pair_template(tokenizer)


def _example(context: str, answer: str, occurrence: int = 0, question: str = "What?", qid: str = "q") -> QAExample:
    start = -1
    for _ in range(occurrence + 1):
        start = context.index(answer, start + 1)
    return QAExample(qid, question, context, [{"text": answer, "answer_start": start}])


def _target_text(features, row: int, context: str) -> str:
    start, end = features.start_positions[row], features.end_positions[row]
    return context[features.offsets[row, start, 0] : features.offsets[row, end, 1]]


@pytest.mark.parametrize(
    "context, answer, occurrence",
    [
        ("Paris is the capital and largest city of France.", "Paris", 0),  # start
        ("Paris is the capital and largest city of France.", "largest city", 0),  # middle
        ("The cat sat on the mat near the old red barn", "red barn", 0),  # end, no final period
        ("The cat sat on the mat near the old red barn.", "the", 1),  # second occurrence
        ("The capital (Paris) of France.", "Paris", 0),  # glued to punctuation on both sides
        ("세종대왕은 1443년에 훈민정음을 창제하였다.", "세종대왕", 0),  # start, particle 은 after it
        ("세종대왕은 1443년에 훈민정음을 창제하였다.", "1443년", 0),  # middle, particle 에 after it
        ("한글은 조선의 백성을 위한 글자", "글자", 0),  # end
    ],
)
def test_answer_offsets_map_to_exact_text(tokenizer, context, answer, occurrence):
    example = _example(context, answer, occurrence, question="Where is it?")
    features = prepare_features([example], tokenizer, max_length=64, doc_stride=16, max_query_length=16)
    assert len(features) == 1
    assert features.start_positions[0] > 0
    assert _target_text(features, 0, context) == answer
    question_length = len(tokenizer.encode("Where is it?", add_special_tokens=False).ids)
    first_context_row = question_length + 2
    assert features.input_ids[0, 0] == tokenizer.token_to_id("[CLS]")
    assert features.input_ids[0, first_context_row - 1] == tokenizer.token_to_id("[SEP]")
    assert features.token_type_ids[0, :first_context_row].sum() == 0
    assert features.token_type_ids[0, first_context_row] == 1
    assert (features.offsets[0, :first_context_row] == -1).all()


def test_layout_matches_the_tokenizers_own_pair_encoding(trained_tokenizer):
    question, context = "Who built the barn?", "The cat sat on the mat near the old red barn."
    example = _example(context, "old red barn", question=question)
    features = prepare_features([example], trained_tokenizer, max_length=48, doc_stride=8, max_query_length=32)
    reference = trained_tokenizer.encode(question, context)
    length = len(reference.ids)
    assert features.input_ids[0, :length].tolist() == reference.ids
    assert features.token_type_ids[0, :length].tolist() == reference.type_ids
    assert features.attention_mask[0].sum() == length
    assert (features.input_ids[0, length:] == trained_tokenizer.token_to_id("[PAD]")).all()
    assert _target_text(features, 0, context) == "old red barn"


def test_trained_tokenizer_korean_answer_at_word_boundary(trained_tokenizer):
    context = "한글은 조선의 백성을 위한 글자이다. 세종대왕은 1443년에 훈민정음을 창제하였다."
    features = prepare_features([_example(context, "창제하였다")], trained_tokenizer, max_length=64, max_query_length=8)
    assert _target_text(features, 0, context) == "창제하였다"


def test_question_is_truncated_to_max_query_length(tokenizer):
    example = _example("Paris is the capital of France.", "France", question="the cat sat on the mat near the barn")
    features = prepare_features([example], tokenizer, max_length=32, max_query_length=3)
    assert features.input_ids[0, 4] == tokenizer.token_to_id("[SEP]")
    assert features.token_type_ids[0, 5] == 1
    assert _target_text(features, 0, example.context) == "France"


def _long_context_example():
    filler = "the cat sat on the mat near the old red barn"
    context = " ".join([filler] * 4)
    # 11 tokens per filler; the answer is words 8..10 of the 2nd copy: context tokens 19..21.
    answer_start = len(filler) + 1 + filler.index("old red barn")
    return QAExample("long", "Who?", context, [{"text": "old red barn", "answer_start": answer_start}])


def test_long_context_windows_and_answer_on_a_boundary(tokenizer):
    example = _long_context_example()
    context_offsets = np.asarray(tokenizer.encode(example.context, add_special_tokens=False).offsets)
    assert len(context_offsets) == 44
    # "Who?" is 2 tokens, so each window holds 20 - 2 - 3 = 15 context tokens; starts 0, 6, 12, 18, 24, 30.
    features = prepare_features([example], tokenizer, max_length=20, doc_stride=6, max_query_length=8)
    assert len(features) == 6
    assert (features.example_index == 0).all()
    first_context_row = 4
    window_first_chars = features.offsets[:, first_context_row, 0]
    assert window_first_chars.tolist() == context_offsets[[0, 6, 12, 18, 24, 30], 0].tolist()
    assert features.offsets[-1, first_context_row + 13, 1] == len(example.context)  # last window reaches the end

    answer_tokens = set(range(19, 22))
    for row, window_start in enumerate([0, 6, 12, 18, 24, 30]):
        window = set(range(window_start, min(window_start + 15, 44)))
        if answer_tokens <= window:
            assert _target_text(features, row, example.context) == "old red barn"
        else:
            assert features.start_positions[row] == features.end_positions[row] == 0
    # Window 1 (tokens 6..20) cuts the answer after "old red": it must target [CLS].
    assert features.start_positions[1] == 0
    assert features.offsets[1, first_context_row + 14, 1] == example.answers[0]["answer_start"] + len("old red")
    assert features.start_positions[2] > 0  # window 2 (tokens 12..26) holds it whole


def test_unanswerable_question_targets_cls_in_every_window(tokenizer):
    example = _long_context_example()
    impossible = QAExample("none", example.question, example.context, [], is_impossible=True)
    features = prepare_features([impossible, example], tokenizer, max_length=20, doc_stride=6, max_query_length=8)
    mine = features.example_index == 0
    assert mine.sum() == 6
    assert (features.start_positions[mine] == 0).all() and (features.end_positions[mine] == 0).all()
    assert features.skipped_example_ids == []


def test_invalid_window_settings_raise(tokenizer):
    with pytest.raises(PrefineError, match="max_length"):
        prepare_features([_long_context_example()], tokenizer, max_length=10, max_query_length=8)


def _write_squad(tmp_path, paragraphs, version="1.1"):
    path = tmp_path / "data.json"
    dataset = {"version": version, "data": [{"title": "t", "paragraphs": paragraphs}]}
    path.write_text(json.dumps(dataset, ensure_ascii=False), encoding="utf-8")
    return path


def test_load_reports_and_training_skips_mismatched_answers(tmp_path, tokenizer):
    context = "Paris is the capital and largest city of France."
    paragraphs = [
        {
            "context": context,
            "qas": [
                {"id": "good", "question": "Capital?", "answers": [{"text": "Paris", "answer_start": 0}]},
                {"id": "bad", "question": "Country?", "answers": [{"text": "France", "answer_start": 40}]},
                {
                    "id": "mixed",
                    "question": "City?",
                    "answers": [{"text": "city", "answer_start": 3}, {"text": "city", "answer_start": 33}],
                },
            ],
        }
    ]
    examples, flavor, report = load_squad_json(_write_squad(tmp_path, paragraphs))
    assert flavor == "squad"
    assert [e.id for e in examples] == ["good", "bad", "mixed"]
    assert report.total_answers == 4
    assert report.mismatched == 2
    assert report.unusable_question_ids == ["bad"]
    assert report.examples[0] == {"id": "bad", "text": "France", "answer_start": 40, "found": " Franc"}
    assert "2 of 4 answers" in report.summary()

    training = prepare_features(examples, tokenizer, max_length=48, max_query_length=8)
    assert training.skipped_example_ids == ["bad"]
    assert sorted(set(training.example_index.tolist())) == [0, 2]
    row_of_mixed = int(np.flatnonzero(training.example_index == 2)[0])
    assert _target_text(training, row_of_mixed, context) == "city"  # the second, matching answer
    evaluation = prepare_features(examples, tokenizer, max_length=48, max_query_length=8, for_training=False)
    assert sorted(set(evaluation.example_index.tolist())) == [0, 1, 2]


def test_load_squad_v2_and_korquad(tmp_path):
    paragraphs = [
        {
            "context": "세종대왕은 훈민정음을 창제하였다.",
            "qas": [
                {"id": "a", "question": "누가?", "answers": [{"text": "세종대왕", "answer_start": 0}], "is_impossible": False},
                {
                    "id": "n",
                    "question": "언제?",
                    "answers": [],
                    "is_impossible": True,
                    "plausible_answers": [{"text": "훈민정음", "answer_start": 6}],
                },
            ],
        }
    ]
    examples, flavor, report = load_squad_json(_write_squad(tmp_path, paragraphs, version="v2.0"))
    assert flavor == "squad_v2"
    assert [e.is_impossible for e in examples] == [False, True]
    assert examples[1].answers == []
    assert report.mismatched == 0 and report.total_answers == 1
    korquad_qa = {"id": "k", "question": "누가?", "answers": [{"text": "세종대왕", "answer_start": 0}]}
    korquad = [{"context": "세종대왕은", "qas": [korquad_qa]}]
    _, flavor, _ = load_squad_json(_write_squad(tmp_path, korquad, version="KorQuAD_v1.0_dev"))
    assert flavor == "korquad"


def test_load_klue_mrc_with_guid_ids_and_unanswerable_questions(tmp_path):
    # KLUE-MRC v1.1: SQuAD's layout, the id under "guid", a question_type, unanswerable questions (type 3).
    paragraphs = [
        {
            "context": "세종대왕은 훈민정음을 창제하였다.",
            "qas": [
                {
                    "question": "누가?",
                    "answers": [{"text": "세종대왕", "answer_start": 0}],
                    "question_type": 1,
                    "is_impossible": False,
                    "guid": "klue-mrc-v1_train_00001",
                },
                {
                    "question": "언제?",
                    "answers": [],
                    "plausible_answers": [{"text": "훈민정음", "answer_start": 6}],
                    "question_type": 3,
                    "is_impossible": True,
                    "guid": "klue-mrc-v1_train_00002",
                },
            ],
        }
    ]
    path = _write_squad(tmp_path, paragraphs)
    examples, flavor, report = load_squad_json(path)
    assert flavor == "klue"
    assert [(e.id, e.is_impossible) for e in examples] == [("klue-mrc-v1_train_00001", False), ("klue-mrc-v1_train_00002", True)]
    assert report.mismatched == 0
    assert [e.id for e in read_questions(path)] == ["klue-mrc-v1_train_00001", "klue-mrc-v1_train_00002"]


def test_load_errors_name_the_problem(tmp_path):
    with pytest.raises(PrefineError, match="does not exist"):
        load_squad_json(tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json", encoding="utf-8")
    with pytest.raises(PrefineError, match="not valid JSON"):
        load_squad_json(broken)
    latin1 = tmp_path / "latin1.json"
    latin1.write_bytes('{"data": "café"}'.encode("latin-1"))
    with pytest.raises(PrefineError, match="not UTF-8"):
        load_squad_json(latin1)
    with pytest.raises(PrefineError, match="'context'"):
        load_squad_json(_write_squad(tmp_path, [{"qas": []}]))
    with pytest.raises(PrefineError, match="'data'"):
        no_data = tmp_path / "no_data.json"
        no_data.write_text('{"version": "1.1"}', encoding="utf-8")
        load_squad_json(no_data)
    with pytest.raises(PrefineError, match="no answers"):
        unanswered = {"id": "x", "question": "q", "answers": []}
        load_squad_json(_write_squad(tmp_path, [{"context": "c", "qas": [unanswered]}]))
    with pytest.raises(PrefineError, match=r"qas\[0\] has no 'id' key \(nor KLUE-MRC's 'guid'\)"):
        load_squad_json(_write_squad(tmp_path, [{"context": "c", "qas": [{"question": "q", "answers": []}]}]))


def _logits_for(features, spans_by_row, null_by_row=None):
    """Start/end logits that are -10 everywhere except the given (row, token, value) choices."""
    start = np.full(features.input_ids.shape, -10.0)
    end = np.full(features.input_ids.shape, -10.0)
    for row, spans in spans_by_row.items():
        for start_token, end_token, value in spans:
            start[row, start_token] = value
            end[row, end_token] = value
    for row, value in (null_by_row or {}).items():
        start[row, 0] = end[row, 0] = value
    return start, end


def _row_of_token_with_char(features, row, char):
    return int(np.flatnonzero(features.offsets[row, :, 0] == char)[0])


def test_decode_picks_the_best_span_across_windows(tokenizer):
    example = _long_context_example()
    features = prepare_features([example], tokenizer, 20, doc_stride=6, max_query_length=8, for_training=False)
    answer_start = example.answers[0]["answer_start"]
    # Window 2 (row 2) scores "old red barn" 2 * 3.0; window 0 scores "the cat" 2 * 2.0.
    old = _row_of_token_with_char(features, 2, answer_start)
    cat = _row_of_token_with_char(features, 0, example.context.index("cat"))
    start, end = _logits_for(features, {2: [(old, old + 2, 3.0)], 0: [(cat - 1, cat, 2.0)]})
    # High logits on question tokens ("who", "?") must neither be chosen nor crowd out the top-k.
    start[:, 1:3] = end[:, 1:3] = 50.0
    predictions, _ = decode_predictions([example], features, start, end, n_best_size=1)
    assert predictions == {"long": "old red barn"}
    predictions, n_best = decode_predictions([example], features, start, end, n_best_size=5)
    assert predictions == {"long": "old red barn"}
    entries = n_best["long"]
    assert entries[0]["text"] == "old red barn" and entries[0]["score"] == pytest.approx(6.0)
    assert (entries[0]["start_char"], entries[0]["end_char"]) == (answer_start, answer_start + len("old red barn"))
    assert entries[1]["text"] == "the cat" and entries[1]["score"] == pytest.approx(4.0)
    # softmax: p(best) / p(second) = e^(6 - 4)
    assert entries[0]["probability"] / entries[1]["probability"] == pytest.approx(np.exp(2.0))
    assert [e["score"] for e in entries] == sorted((e["score"] for e in entries), reverse=True)
    assert sum(e["probability"] for e in entries) == pytest.approx(1.0)
    assert len({(e["start_char"], e["end_char"]) for e in entries}) == len(entries)  # no duplicate spans
    assert len(entries) == 5


def test_decode_respects_max_answer_length_and_keeps_original_whitespace(tokenizer):
    context = "He moved to New   York City in the   old red barn days."
    example = QAExample("w", "Where?", context, [{"text": "New   York City", "answer_start": 12}])
    features = prepare_features([example], tokenizer, max_length=40, max_query_length=8, for_training=False)
    new = _row_of_token_with_char(features, 0, 12)
    start, end = _logits_for(features, {0: [(new, new + 2, 4.0)]})
    predictions, _ = decode_predictions([example], features, start, end)
    assert predictions["w"] == "New   York City"  # three spaces kept, original case kept

    # Make a 7-token span the top score; with max_answer_length=3 the 3-token span wins.
    start[0, new] = 6.0
    end[0, new + 6] = 6.0
    predictions, _ = decode_predictions([example], features, start, end, max_answer_length=7)
    assert predictions["w"] == "New   York City in the   old red"
    predictions, _ = decode_predictions([example], features, start, end, max_answer_length=3)
    assert predictions["w"] == "New   York City"


def test_decode_korean_keeps_particle_out(tokenizer):
    context = "세종대왕은 1443년에 훈민정음을 창제하였다."
    example = QAExample("k", "누가?", context, [{"text": "세종대왕", "answer_start": 0}])
    features = prepare_features([example], tokenizer, max_length=32, max_query_length=8, for_training=False)
    first = _row_of_token_with_char(features, 0, 0)
    start, end = _logits_for(features, {0: [(first, first, 5.0)]})
    predictions, _ = decode_predictions([example], features, start, end)
    assert predictions["k"] == "세종대왕"


def test_decode_version_2_null_threshold(tokenizer):
    example = _long_context_example()
    features = prepare_features([example], tokenizer, 20, doc_stride=6, max_query_length=8, for_training=False)
    old = _row_of_token_with_char(features, 2, example.answers[0]["answer_start"])
    # Best span scores 6.0. [CLS] scores 2 * 4.0 = 8.0 in every window but 2 * 3.5 = 7.0 in window 3:
    # the null score is the minimum, 7.0, so null - best = 1.0.
    null_by_row = {row: 4.0 for row in range(len(features))} | {3: 3.5}
    start, end = _logits_for(features, {2: [(old, old + 2, 3.0)]}, null_by_row=null_by_row)
    predictions, n_best = decode_predictions([example], features, start, end, version_2=True)
    assert predictions["long"] == ""
    null_entries = [e for e in n_best["long"] if e["text"] == "" and e["start_char"] == -1]
    assert len(null_entries) == 1 and null_entries[0]["score"] == pytest.approx(7.0)
    assert n_best["long"][0] is null_entries[0]
    predictions, _ = decode_predictions([example], features, start, end, version_2=True, null_score_diff_threshold=1.5)
    assert predictions["long"] == "old red barn"
    predictions, _ = decode_predictions([example], features, start, end, version_2=False)
    assert predictions["long"] == "old red barn"


def articles_of(count: int, paragraphs: int = 2, questions: int = 3, title=lambda number: f"article {number}") -> dict:
    """A SQuAD v1.1 dataset of `count` articles with distinct contexts, and fields beyond SQuAD's on every level."""
    data = []
    for number in range(count):
        paragraph_list = []
        for paragraph in range(paragraphs):
            context = f"Article {number} paragraph {paragraph} says red."
            qas = [
                {
                    "id": f"{number}-{paragraph}-{q}",
                    "question": f"Which color {q}?",
                    "answers": [{"text": "red", "answer_start": context.index("red")}],
                }
                for q in range(questions)
            ]
            paragraph_list.append({"context": context, "qas": qas, "source": "wiki"})
        data.append({"title": title(number), "paragraphs": paragraph_list, "news_category": "science"})
    return {"version": "1.1", "data": data, "note": "kept"}


def contexts_and_titles(dataset: dict) -> tuple[set[str], set[str]]:
    return (
        {paragraph["context"] for article in dataset["data"] for paragraph in article["paragraphs"]},
        {article["title"] for article in dataset["data"]},
    )


def test_split_holds_out_whole_articles_seeded_and_counts_questions():
    dataset = articles_of(20)
    split = split_squad_dataset(dataset, 0.2, seed=0)
    assert split.grouped_by == "article" and split.num_groups == 20
    train_contexts, train_titles = contexts_and_titles(split.train)
    dev_contexts, dev_titles = contexts_and_titles(split.dev)
    # 4 of 20 articles, whole: no title and no context on both sides.
    assert len(dev_titles) == 4 and not train_titles & dev_titles and not train_contexts & dev_contexts
    assert (split.num_train, split.num_dev) == (16 * 6, 4 * 6)  # questions, not articles or paragraphs
    # Every field outside data (version, ...) and inside it is written back unchanged.
    assert {key: value for key, value in split.dev.items() if key != "data"} == {"version": "1.1", "note": "kept"}
    assert all(article in dataset["data"] for article in split.train["data"] + split.dev["data"])
    again, other = split_squad_dataset(dataset, 0.2, seed=0), split_squad_dataset(dataset, 0.2, seed=1)
    assert again.dev == split.dev and other.dev != split.dev


def test_split_keeps_entries_sharing_a_title_or_a_context_on_one_side():
    # A page cut into entries under one title, and two titles quoting the same paragraph: each is one document.
    dataset = articles_of(12, title=lambda number: f"page {number // 2}")
    dataset["data"][11]["paragraphs"][0]["context"] = dataset["data"][0]["paragraphs"][0]["context"]
    for seed in range(5):
        split = split_squad_dataset(dataset, 0.3, seed=seed)
        assert split.grouped_by == "article" and split.num_groups == 5  # pages 0 and 5 are joined by the shared context
        train_contexts, train_titles = contexts_and_titles(split.train)
        dev_contexts, dev_titles = contexts_and_titles(split.dev)
        assert not train_titles & dev_titles and not train_contexts & dev_contexts


def test_split_of_too_few_articles_falls_back_to_paragraphs_without_sharing_a_context():
    dataset = articles_of(1, paragraphs=10)
    split = split_squad_dataset(dataset, 0.2, seed=0)
    assert split.grouped_by == "paragraph" and split.num_groups == 10 and (split.num_train, split.num_dev) == (24, 6)
    train_contexts, _ = contexts_and_titles(split.train)
    dev_contexts, _ = contexts_and_titles(split.dev)
    assert len(dev_contexts) == 2 and not train_contexts & dev_contexts
    # The article is on both sides, each with its own paragraphs and every other field.
    assert split.dev["data"][0]["news_category"] == "science" and len(split.dev["data"][0]["paragraphs"]) == 2
    # Three articles cannot hold out 0.1 of them (it rounds to none): paragraphs again.
    assert split_squad_dataset(articles_of(3), 0.1, seed=0).grouped_by == "paragraph"


def test_split_of_one_context_is_refused_naming_the_way_out():
    with pytest.raises(PrefineError, match="one context.*--eval DEV"):
        split_squad_dataset(articles_of(1, paragraphs=1, questions=10), 0.2, seed=0, source="train.json")
