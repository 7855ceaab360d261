"""Text generation end to end through the CLI: finetune, evaluate, predict, generate, export to transformers, bad input."""

from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path

import pytest
import torch

from prefine.checkpoint import save_checkpoint, write_run
from prefine.cli import main
from prefine.errors import PrefineError
from prefine.generation import DecodingConfig
from prefine.inference import load_run
from prefine.model import BertConfig, BertForPreTraining
from prefine.tokenizer import TokenizerConfig, save_tokenizer, tokenizer_fingerprint, train_tokenizer

pytest.importorskip("sacrebleu")

WORDS = "red blue green cat dog bird tree river moon sun 고양이 강아지 나무 하늘 바다 달".split()
TRAINING_FLAGS = ["--batch-size", "16", "--learning-rate", "3e-3", "--num-threads", "1", "--no-progress", "--seed", "0"]
GENERATION_FLAGS = ["--max-source-length", "32", "--max-target-length", "16"]


def synthetic_pairs(count: int, seed: int) -> list[dict[str, str]]:
    """A document of 5-10 English and Korean words; its "summary" is its first four words."""
    rng = random.Random(seed)
    pairs = []
    for _ in range(count):
        words = rng.choices(WORDS, k=rng.randint(5, 10))
        pairs.append({"document": " ".join(words), "summary": " ".join(words[:4])})
    return pairs


def write_jsonl(path: Path, records: list[dict]) -> str:
    path.write_text("".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records), encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def pair_files(tmp_path_factory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("pairs")
    return {
        "train": write_jsonl(folder / "train.jsonl", synthetic_pairs(320, seed=0)),
        "dev": write_jsonl(folder / "dev.jsonl", synthetic_pairs(30, seed=1)),
    }


@pytest.fixture(scope="module")
def init_run(tmp_path_factory, pair_files) -> Path:
    """A tiny BERT run folder as `prefine pretrain` leaves it: tokenizer/, checkpoints/, run.json."""
    run_dir = tmp_path_factory.mktemp("init") / "tiny-bert"
    texts = [json.loads(line)["document"] for line in Path(pair_files["train"]).read_text(encoding="utf-8").splitlines()]
    tokenizer = train_tokenizer(texts, TokenizerConfig(vocab_size=200, min_frequency=1), show_progress=False)
    save_tokenizer(tokenizer, run_dir / "tokenizer")
    config = BertConfig(
        vocab_size=tokenizer.get_vocab_size(),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    torch.manual_seed(0)
    model = BertForPreTraining(config)
    checkpoint_config = {
        **dataclasses.asdict(config),
        "model_type": "bert",
        "architectures": ["BertForPreTraining"],
        "tokenizer_fingerprint": tokenizer_fingerprint(tokenizer),
    }
    write_run(run_dir, {"kind": "pretrain", "model": dataclasses.asdict(config)})
    save_checkpoint(run_dir, 1, model.state_dict(), checkpoint_config, trainer_state=None, keep_last=1)
    return run_dir


@pytest.fixture(scope="module")
def generation_run(tmp_path_factory, init_run, pair_files) -> Path:
    out = tmp_path_factory.mktemp("generation") / "summarizer"
    code = main(
        [
            "finetune",
            "--task",
            "generation",
            "--init",
            str(init_run),
            "--train",
            pair_files["train"],
            "--eval",
            pair_files["dev"],
            "--out",
            str(out),
            "--epochs",
            "12",
            *GENERATION_FLAGS,
            *TRAINING_FLAGS,
        ]
    )
    assert code == 0
    return out


def last_json_line(output: str) -> dict:
    return json.loads(output.strip().splitlines()[-1])


def test_finetune_learns_to_summarize_and_writes_predictions_in_input_order(generation_run, pair_files):
    metrics = json.loads((generation_run / "eval_metrics.json").read_text(encoding="utf-8"))
    assert metrics["rougeL"] > 90 and metrics["exact_match"] > 80 and metrics["bleu"] > 50
    predictions = json.loads((generation_run / "predictions.json").read_text(encoding="utf-8"))
    dev = [json.loads(line) for line in Path(pair_files["dev"]).read_text(encoding="utf-8").splitlines()]
    assert [entry["source"] for entry in predictions] == [pair["document"] for pair in dev]
    assert [entry["reference"] for entry in predictions] == [pair["summary"] for pair in dev]
    run = json.loads((generation_run / "run.json").read_text(encoding="utf-8"))
    assert run["task"] == "generation" and run["columns"] == {"source": "document", "target": "summary"}


def test_evaluate_rescores_the_run_exactly_as_fine_tuning_did(generation_run, pair_files, capsys):
    assert main(["evaluate", str(generation_run), "--data", pair_files["dev"]]) == 0
    scores = last_json_line(capsys.readouterr().out)
    saved = json.loads((generation_run / "eval_metrics.json").read_text(encoding="utf-8"))
    for name in ("rouge1", "rouge2", "rougeL", "bleu", "exact_match", "loss"):
        assert scores[name] == pytest.approx(saved[name])
    assert scores["examples"] == 30


def test_predict_and_generate_data_write_one_line_per_input_in_order(generation_run, pair_files, tmp_path, capsys):
    predictions = json.loads((generation_run / "predictions.json").read_text(encoding="utf-8"))
    assert main(["predict", str(generation_run), "--data", pair_files["dev"]]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert [line["generated"] for line in lines] == [entry["generated"] for entry in predictions]
    out = tmp_path / "beams.jsonl"
    assert main(["generate", str(generation_run), "--data", pair_files["dev"], "--num-beams", "3", "--output", str(out)]) == 0
    beams = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [line["source"] for line in beams] == [entry["source"] for entry in predictions]
    assert sum(line["generated"] == entry["reference"] for line, entry in zip(beams, predictions)) >= 24
    assert not list(tmp_path.glob("*.partial"))


def test_generate_text_streams_the_tokens_as_they_are_decoded(generation_run, capsys):
    source = "하늘 bird 달 blue 나무 green"
    assert main(["generate", str(generation_run), "--text", source]) == 0
    assert capsys.readouterr().out == "하늘 bird 달 blue\n"
    predictor = load_run(generation_run)
    pieces: list[str] = []
    final = predictor.stream(source, DecodingConfig(), pieces.append)
    assert final == "하늘 bird 달 blue" and "".join(pieces) == final and len(pieces) == 4
    # What `prefine serve` streams: the same pieces as events, then each input's final output.
    events = list(predictor.stream_records([{"text": source}, {"text": source}], decoding={"max_new_tokens": 3}))
    first = [event["delta"] for event in events if event["index"] == 0 and "delta" in event]
    outputs = [event["output"] for event in events if "output" in event]
    assert outputs == predictor.predict_records([{"text": source}] * 2, decoding={"max_new_tokens": 3})
    assert "".join(first) == outputs[0]["generated"] and len(first) >= 2
    with pytest.raises(PrefineError, match="unknown decoding option"):
        predictor.predict_records([{"text": source}], decoding={"beams": 4})


def test_export_loads_in_transformers_and_its_greedy_generate_returns_our_tokens(generation_run, pair_files, tmp_path):
    transformers = pytest.importorskip("transformers")
    out = tmp_path / "hf"
    assert main(["export", str(generation_run), "--out", str(out)]) == 0
    model = transformers.EncoderDecoderModel.from_pretrained(out).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(out)
    texts = [pair["document"] for pair in synthetic_pairs(20, seed=7)]
    texts[3] = "강아지 " * 20 + "moon"  # longer than most: a padded batch; wrong guesses run past the summary
    encoded = tokenizer(texts, return_tensors="pt", padding=True)
    with torch.no_grad():
        theirs = model.generate(**encoded, max_new_tokens=15, num_beams=1, do_sample=False)
    predictor = load_run(generation_run)
    from prefine.tasks.generation import generate_ids

    ours = generate_ids(predictor.model, predictor.encode_inputs(texts), DecodingConfig(), 15, predictor.ids, 64, torch.device("cpu"))
    sep = tokenizer.sep_token_id
    for row, tokens in zip(theirs.tolist(), ours):
        generated = row[1:]
        assert generated[: generated.index(sep) if sep in generated else len(generated)] == tokens
    assert tokenizer.batch_decode(theirs, skip_special_tokens=True) == predictor.generate_texts(texts, DecodingConfig(max_new_tokens=15))


def test_shared_encoder_decoder_trains_and_exports(init_run, pair_files, tmp_path):
    transformers = pytest.importorskip("transformers")
    out = tmp_path / "shared"
    code = main(
        [
            "finetune",
            "--task",
            "generation",
            "--init",
            str(init_run),
            "--train",
            pair_files["train"],
            "--out",
            str(out),
            "--max-steps",
            "20",
            "--share-encoder-decoder",
            *GENERATION_FLAGS,
            *TRAINING_FLAGS,
        ]
    )
    assert code == 0
    predictor = load_run(out)
    assert predictor.model.share_encoder_decoder
    assert main(["export", str(out), "--out", str(tmp_path / "hf")]) == 0
    model = transformers.EncoderDecoderModel.from_pretrained(tmp_path / "hf").eval()
    texts = ["cat dog 하늘 moon sun", "나무 tree river"]
    encoded = transformers.AutoTokenizer.from_pretrained(tmp_path / "hf")(texts, return_tensors="pt", padding=True)
    with torch.no_grad():
        theirs = model(**encoded, decoder_input_ids=torch.full((2, 1), predictor.ids.start)).logits[:, 0]
        batch = predictor.encode_inputs(texts).sources.collate(torch.arange(2).numpy(), predictor.ids.pad)
        memory = predictor.model.encode(batch["input_ids"], batch["attention_mask"])
        cache = predictor.model.start_decoding(memory, batch["attention_mask"], 1)
        ours = predictor.model.decode_step(cache, torch.full((2,), predictor.ids.start))
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)


def test_continue_fine_tuning_from_a_generation_run(generation_run, pair_files, tmp_path, capsys):
    out = tmp_path / "continued"
    code = main(
        [
            "finetune",
            "--task",
            "generation",
            "--init",
            str(generation_run),
            "--train",
            pair_files["train"],
            "--eval",
            pair_files["dev"],
            "--out",
            str(out),
            "--max-steps",
            "1",
            "--learning-rate",
            "1e-6",
            *GENERATION_FLAGS,
            *TRAINING_FLAGS[4:],
        ]
    )
    assert code == 0
    assert "new: nothing" in capsys.readouterr().out
    assert json.loads((out / "eval_metrics.json").read_text(encoding="utf-8"))["exact_match"] > 80


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_bad_input_fails_with_one_line_and_leaves_nothing(init_run, generation_run, pair_files, tmp_path, capsys):
    rows = synthetic_pairs(10, seed=3)
    rows[4]["summary"] = "  "
    empty_target = write_jsonl(tmp_path / "empty.jsonl", rows)
    no_target = write_jsonl(tmp_path / "nocol.jsonl", [{"document": "a b c", "notes": "x"}])
    base = ["finetune", "--task", "generation", "--init", str(init_run), *GENERATION_FLAGS, *TRAINING_FLAGS]
    cases = [
        (base + ["--train", empty_target, "--out", str(tmp_path / "a")], "line 5 has an empty target"),
        (base + ["--train", no_target, "--out", str(tmp_path / "b")], "--target-column"),
        (base + ["--train", pair_files["train"], "--target-column", "title", "--out", str(tmp_path / "c")], "no target column 'title'"),
        (
            base + ["--train", pair_files["train"], "--out", str(tmp_path / "d"), "--max-target-length", "100"],
            "--max-target-length 100 exceeds",
        ),
        (["generate", str(generation_run)], "either --text"),
        (["generate", str(init_run), "--text", "cat"], "pre-training run"),
        (["generate", str(generation_run), "--text", "cat", "--do-sample", "--num-beams", "2"], "--do-sample"),
    ]
    for args, message in cases:
        code, out, err = run_cli(args, capsys)
        assert code == 2, args
        lines = err.strip().splitlines()
        assert message in lines[-1] and lines[-1].startswith("prefine: error:"), err
        assert "Traceback" not in err and out == ""
    for name in "abcd":
        assert not (tmp_path / name).exists()


def test_classification_run_passed_to_generate_is_rejected(tmp_path, init_run, capsys):
    records = [{"text": f"{word} {word}", "label": "pos" if index % 2 else "neg"} for index, word in enumerate(WORDS * 2)]
    data = write_jsonl(tmp_path / "cls.jsonl", records)
    out = tmp_path / "cls"
    assert (
        main(
            [
                "finetune",
                "--init",
                str(init_run),
                "--train",
                data,
                "--out",
                str(out),
                "--max-steps",
                "1",
                "--max-seq-length",
                "16",
                *TRAINING_FLAGS,
            ]
        )
        == 0
    )
    capsys.readouterr()
    code, _, err = run_cli(["generate", str(out), "--text", "cat"], capsys)
    assert code == 2 and "is a classification run; prefine generate needs a run fine-tuned with --task generation" in err


def test_long_sources_are_truncated_and_counted_once(generation_run, capsys):
    predictor = load_run(generation_run)
    predictor.generate_texts(["cat " * 50, "dog " * 60, "moon sun"], DecodingConfig(max_new_tokens=3))
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "2 of 3 inputs reach the run's --max-source-length 32" in err
    records = predictor.predict_records([{"text": "red cat tree moon"}, {"source": "sun 바다 달 tree"}])
    assert records == [{"generated": "red cat tree moon"}, {"generated": "sun 바다 달 tree"}]
    with pytest.raises(Exception, match="input 2"):
        predictor.predict_records([{"text": "a"}, {"question": "b"}])


def test_a_transformers_encoder_decoder_folder_works_as_init(generation_run, init_run, pair_files, tmp_path, capsys):
    exported = tmp_path / "hf"
    assert main(["export", str(generation_run), "--out", str(exported)]) == 0
    capsys.readouterr()
    out = tmp_path / "from-hf"
    code = main(
        [
            "finetune",
            "--task",
            "generation",
            "--init",
            str(exported),
            "--train",
            pair_files["train"],
            "--eval",
            pair_files["dev"],
            "--out",
            str(out),
            "--max-steps",
            "1",
            "--learning-rate",
            "1e-6",
            *GENERATION_FLAGS,
            *TRAINING_FLAGS[4:],
        ]
    )
    assert code == 0
    assert f"init: Hugging Face checkpoint {exported} into the encoder and the decoder; new: nothing" in capsys.readouterr().out
    assert json.loads((out / "eval_metrics.json").read_text(encoding="utf-8"))["exact_match"] > 80
    # Its encoder alone starts a classifier.
    records = [{"text": f"{word} {word}", "label": "pos" if index % 2 else "neg"} for index, word in enumerate(WORDS * 2)]
    data = write_jsonl(tmp_path / "cls.jsonl", records)
    assert (
        main(
            [
                "finetune",
                "--init",
                str(exported),
                "--train",
                data,
                "--out",
                str(tmp_path / "cls"),
                "--max-steps",
                "1",
                "--max-seq-length",
                "16",
                *TRAINING_FLAGS,
            ]
        )
        == 0
    )
    assert "new: classifier" in capsys.readouterr().out


def test_compare_and_resume_work_for_generation(init_run, pair_files, tmp_path, capsys):
    out = tmp_path / "compare"
    code = main(
        [
            "compare",
            "--task",
            "generation",
            "--init",
            str(init_run),
            "--train",
            pair_files["train"],
            "--eval",
            pair_files["dev"],
            "--fractions",
            "0.5,1.0",
            "--max-steps",
            "3",
            "--min-steps",
            "1",
            "--seeds",
            "1",
            "--out",
            str(out),
            *GENERATION_FLAGS,
            *TRAINING_FLAGS,
        ]
    )
    assert code == 0
    rows = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["comparison"]
    assert [row["fraction"] for row in rows] == [0.5, 1.0] and {row["metric"] for row in rows} == {"rougeL"}
    assert rows[0]["examples"] == 144  # half of the 288 training pairs a 10% dev split leaves
    assert rows[0]["reported_on"] == pair_files["dev"]
    run = tmp_path / "resumed"
    base = [
        "finetune",
        "--task",
        "generation",
        "--init",
        str(init_run),
        "--train",
        pair_files["train"],
        "--out",
        str(run),
        *GENERATION_FLAGS,
        *TRAINING_FLAGS,
    ]
    assert main(base + ["--max-steps", "4", "--save-every", "2"]) == 0
    assert main(["finetune", "--resume", str(run), "--max-steps", "6"]) == 0
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]
    assert max(steps) == 6
