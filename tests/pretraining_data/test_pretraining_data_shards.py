"""Token cache: round trip, dtype, batching, caching, atomic builds and the train/eval split."""

from __future__ import annotations

import numpy as np
import pytest
from pretraining_data_helpers import SPECIAL_TOKENS, random_documents
from tokenizers import Tokenizer, models, pre_tokenizers

from prefine.errors import PrefineError
from prefine.pretraining_data.shards import (
    TokenShards,
    build_token_shards,
    cache_key,
    cached_token_shards,
    split_documents,
    token_counts,
    token_dtype,
)


def expected_sentences(tokenizer, documents):
    """Per document, the tokenizer's ids of each sentence that has any, dropping documents left empty."""
    result = []
    for document in documents:
        sentences = [tokenizer.encode(s, add_special_tokens=False).ids for s in document]
        sentences = [ids for ids in sentences if ids]
        if sentences:
            result.append(sentences)
    return result


def test_round_trip_matches_tokenizer_and_drops_empty_text(tokenizer, tmp_path):
    documents = random_documents(1, 30)
    documents[3].insert(1, "")
    documents[5].append("   ")
    documents.insert(7, [])
    documents.insert(9, ["", " "])
    shards = build_token_shards(documents, tokenizer, tmp_path / "cache", batch_size=4)

    expected = expected_sentences(tokenizer, documents)
    assert shards.num_documents == len(expected) == 30
    assert shards.num_sentences == sum(len(d) for d in expected)
    sentence = 0
    for document, sentences in enumerate(expected):
        assert shards.document_tokens(document).tolist() == [t for ids in sentences for t in ids]
        for ids in sentences:
            assert shards.sentence_tokens(sentence).tolist() == ids
            sentence += 1
    reopened = TokenShards.open(tmp_path / "cache")
    assert np.array_equal(reopened.tokens, shards.tokens)
    assert np.array_equal(reopened.document_starts, shards.document_starts)


def test_batch_size_does_not_change_the_cache(tokenizer, tmp_path):
    documents = random_documents(2, 25)
    one = build_token_shards(documents, tokenizer, tmp_path / "one", batch_size=1)
    many = build_token_shards(documents, tokenizer, tmp_path / "many", batch_size=1000)
    for name in ("tokens.bin", "sentence_starts.bin", "document_starts.bin"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "many" / name).read_bytes()
    assert one.num_tokens == many.num_tokens


def test_dtype_follows_vocabulary_size(tokenizer, tmp_path):
    assert token_dtype(65535) == np.uint16 and token_dtype(65536) == np.uint32
    assert build_token_shards([["alpha beta"]], tokenizer, tmp_path / "small").tokens.dtype == np.uint16

    # A vocabulary past 65536 entries needs 32-bit ids; the high ids must survive the round trip.
    vocab = {token: i for i, token in enumerate(SPECIAL_TOKENS)}
    for i in range(70_000):
        vocab[f"w{i}"] = len(vocab)
    big = Tokenizer(models.WordPiece(vocab=vocab, unk_token="[UNK]"))
    big.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    shards = build_token_shards([["w69999 w3", "w65600"]], big, tmp_path / "big")
    assert shards.tokens.dtype == np.uint32
    assert shards.document_tokens(0).tolist() == [vocab["w69999"], vocab["w3"], vocab["w65600"]]
    assert vocab["w69999"] > 65_535 and vocab["w65600"] > 65_535


def test_tokenizer_padding_and_truncation_do_not_leak_into_the_cache(tokenizer, tmp_path):
    documents = random_documents(3, 5)
    padded = Tokenizer.from_str(tokenizer.to_str())
    padded.enable_padding(length=64)
    padded.enable_truncation(max_length=4)
    shards = build_token_shards(documents, padded, tmp_path / "cache")
    assert shards.document_tokens(0).tolist() == [t for ids in expected_sentences(tokenizer, documents)[0] for t in ids]
    assert padded.padding is not None, "the caller's tokenizer is left as it was"


def test_cache_is_reused_and_a_changed_key_rebuilds(tokenizer, tmp_path, capsys):
    documents = random_documents(4, 10)
    calls = []

    def factory():
        calls.append(1)
        return iter(documents)

    key = {"corpus": "abc", "tokenizer": "def", "max_seq_length": 128}
    first = cached_token_shards(factory, tokenizer, tmp_path, key)
    second = cached_token_shards(factory, tokenizer, tmp_path, dict(reversed(list(key.items()))))
    assert len(calls) == 1, "the second call must not re-tokenize"
    assert "Reusing token cache" in capsys.readouterr().err
    assert second.directory == first.directory == tmp_path / cache_key(key)
    assert np.array_equal(second.tokens, first.tokens)

    changed = cached_token_shards(factory, tokenizer, tmp_path, {**key, "tokenizer": "xyz"})
    assert len(calls) == 2
    assert changed.directory != first.directory


def test_interrupted_build_leaves_no_cache(tokenizer, tmp_path):
    def failing_documents():
        yield from random_documents(5, 3)
        raise KeyboardInterrupt

    key = {"corpus": "interrupted"}
    with pytest.raises(KeyboardInterrupt):
        cached_token_shards(failing_documents, tokenizer, tmp_path, key, batch_size=1)
    assert list(tmp_path.iterdir()) == [], "no cache folder and no partial folder may remain"
    shards = cached_token_shards(lambda: random_documents(5, 3), tokenizer, tmp_path, key)
    assert shards.num_documents == 3


def test_corpus_without_text_is_a_user_error(tokenizer, tmp_path):
    with pytest.raises(PrefineError, match="no text"):
        build_token_shards([[""], [], ["  "]], tokenizer, tmp_path / "cache")
    assert not (tmp_path / "cache").exists()


def test_opening_a_folder_that_is_not_a_cache_is_a_user_error(tmp_path):
    with pytest.raises(PrefineError, match="rebuild"):
        TokenShards.open(tmp_path)


def test_split_is_deterministic_disjoint_and_keeps_both_sides(tokenizer, tmp_path):
    shards = build_token_shards(random_documents(6, 200), tokenizer, tmp_path / "cache")
    train, evaluation = split_documents(shards, 0.1, seed=7)
    again_train, again_eval = split_documents(shards, 0.1, seed=7)
    assert np.array_equal(train, again_train) and np.array_equal(evaluation, again_eval)
    assert len(evaluation) == 20 and len(train) == 180
    assert sorted(np.concatenate([train, evaluation]).tolist()) == list(range(200))
    assert not np.array_equal(evaluation, split_documents(shards, 0.1, seed=8)[1])

    two = build_token_shards(random_documents(7, 2), tokenizer, tmp_path / "two")
    train, evaluation = split_documents(two, 0.02, seed=0)
    assert len(train) == 1 and len(evaluation) == 1
    one = build_token_shards(random_documents(8, 1), tokenizer, tmp_path / "one")
    train, evaluation = split_documents(one, 0.5, seed=0)
    assert train.tolist() == [0] and evaluation.tolist() == []


def test_a_cache_finished_by_another_process_meanwhile_is_kept_not_replaced(tokenizer, tmp_path):
    """The race of two builds of one cache, made deterministic: the other build finishes while ours runs."""
    documents = random_documents(6, 8)
    key = {"corpus": "raced"}
    other: list[TokenShards] = []

    def documents_while_another_build_finishes():
        other.append(build_token_shards(iter(documents), tokenizer, tmp_path / cache_key(key), metadata=key))
        (other[0].directory / "built-by-the-other-process").touch()
        yield from documents

    ours = cached_token_shards(documents_while_another_build_finishes, tokenizer, tmp_path, key)
    # The other process's cache is still the one on disk (its readers keep working), and both agree.
    assert other[0].directory.exists() and np.array_equal(np.asarray(other[0].tokens), np.asarray(ours.tokens))
    assert (tmp_path / cache_key(key) / "built-by-the-other-process").exists()
    assert sorted(path.name for path in tmp_path.iterdir()) == [cache_key(key)], "no partial folder may remain"


def test_two_processes_building_one_cache_at_once_both_get_it(tokenizer, tmp_path):
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    tokenizer.save(str(tmp_path / "tokenizer.json"))
    (tmp_path / "documents.json").write_text(json.dumps(random_documents(7, 300)))
    go = tmp_path / "go"
    script = f"""
import json, sys, time
from pathlib import Path
import numpy as np
from tokenizers import Tokenizer
from prefine.pretraining_data.shards import cached_token_shards
tokenizer = Tokenizer.from_file({str(tmp_path / "tokenizer.json")!r})
documents = json.loads(Path({str(tmp_path / "documents.json")!r}).read_text())
while not Path({str(go)!r}).exists():
    time.sleep(0.01)
shards = cached_token_shards(lambda: iter(documents), tokenizer, {str(tmp_path / "cache")!r}, {{"corpus": "shared"}}, batch_size=10)
print(shards.num_documents, int(np.asarray(shards.tokens, dtype=np.int64).sum()))
"""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    processes = [
        subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    go.touch()
    results = [process.communicate() for process in processes]
    assert all(process.returncode == 0 for process in processes), [err for _, err in results]
    assert results[0][0] == results[1][0] and results[0][0].split()[0] == str(len(random_documents(7, 300)))
    assert len(list((tmp_path / "cache").iterdir())) == 1, "one cache folder, no partial or stale ones"


@pytest.mark.parametrize("side", ["train", "eval"])
def test_token_counts_count_only_the_documents_asked_for(tokenizer, tmp_path, side):
    shards = build_token_shards(random_documents(9, 60), tokenizer, tmp_path / "cache")
    train_ids, eval_ids = split_documents(shards, 0.2, seed=1)
    doc_ids = train_ids if side == "train" else eval_ids  # most documents (counted by subtraction) or few (one by one)
    expected = np.zeros(shards.vocab_size, dtype=np.int64)
    for document in doc_ids:
        for token in shards.document_tokens(int(document)).tolist():
            expected[token] += 1
    np.testing.assert_array_equal(token_counts(shards, doc_ids), expected)
