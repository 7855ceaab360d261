"""Multi-process training under torchrun, on CPU with gloo: two real processes per launch.

Covers: ranks take disjoint halves of each global batch; two processes end with the weights of
one process holding the whole batch; a two-process checkpoint resumes in one process; a failure
on one rank ends the job with that rank's error; `prefine pretrain` under torchrun records,
logs and saves once (rank 0) and resumes with the same number of processes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import torch

from prefine.checkpoint import latest_checkpoint, load_trainer_state, load_weights
from prefine.data_position import DataPosition
from prefine.errors import PrefineError
from prefine.pretraining_data import build_token_shards
from prefine.registry import RunRegistry
from prefine.tokenizer import TokenizerConfig, save_tokenizer, train_tokenizer
from prefine.training import DistributedContext, train
from prefine.training.distributed import check_batch_split
from tests.conftest import synthetic_documents, write_bert_text
from tests.training.distributed_worker import INJECTED_FAILURE, RecordingTask, build_run, example_hashes

REPO_ROOT = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).with_name("distributed_worker.py")
SINGLE_CPU = DistributedContext(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
# Same arithmetic, different summation order (per-rank padding, DDP's gradient averaging).
FP32_TOLERANCE = 1e-5


def torchrun(*arguments: str, cwd: Path = REPO_ROOT) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO_ROOT)}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", *arguments]
    # The timeout only turns a hang (the failure this file guards against) into a test failure.
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> tuple[Path, Path]:
    """A tokenizer and token shards on disk, shared by the in-process reference and the workers."""
    root = tmp_path_factory.mktemp("distributed")
    documents = synthetic_documents(150, seed=5)
    tokenizer = train_tokenizer(
        (sentence for document in documents for sentence in document), TokenizerConfig(vocab_size=300, min_frequency=1), show_progress=False
    )
    save_tokenizer(tokenizer, root / "tokenizer")
    build_token_shards(documents, tokenizer, root / "shards")
    return root / "shards", root / "tokenizer"


def read_examples(log_path: Path) -> list[dict]:
    return [json.loads(line) for line in log_path.read_text(encoding="utf-8").splitlines()]


def assert_same_weights(actual: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    assert actual.keys() == expected.keys()
    for name in expected:
        torch.testing.assert_close(actual[name], expected[name], rtol=0, atol=FP32_TOLERANCE, msg=name)


def test_ranks_take_disjoint_halves_of_the_same_global_batch(prepared):
    _, task, _ = build_run(*prepared, max_steps=1)
    position = DataPosition(0, 0)
    for _ in range(3):
        whole, after_whole = task.batch_at(position, 0, 1)
        first, after_first = task.batch_at(position, 0, 2)
        second, after_second = task.batch_at(position, 1, 2)
        assert example_hashes(first) + example_hashes(second) == example_hashes(whole)
        assert not set(example_hashes(first)) & set(example_hashes(second))
        assert after_first == after_second == after_whole  # positions count examples, whatever the world size
        position = after_whole


def test_uneven_batch_split_is_a_clear_error():
    # The recipes call this right after joining the process group, with the same flags on every
    # rank, so all ranks stop with this message together instead of one waiting in a collective.
    assert check_batch_split(16, 2, 2) == 4
    with pytest.raises(PrefineError, match="multiple of 4"):
        check_batch_split(6, 2, 2)


def test_two_processes_equal_one_and_their_checkpoint_resumes_in_one(prepared, tmp_path):
    # Reference: one process with the whole global batch, checkpoints at steps 4 and 6.
    model, task, training = build_run(*prepared, max_steps=6, save_every=4)
    train(model, RecordingTask(task, tmp_path / "single-examples.jsonl", 0), training, tmp_path / "single", {}, SINGLE_CPU)
    single_steps = read_examples(tmp_path / "single-examples.jsonl")

    result = torchrun(
        str(WORKER), "--shards", str(prepared[0]), "--tokenizer", str(prepared[1]), "--run-dir", str(tmp_path / "two"), "--max-steps", "4"
    )
    assert result.returncode == 0, result.stderr[-3000:]

    # Each step, the ranks trained on disjoint halves of exactly the examples the single process saw.
    rank_steps = [read_examples(tmp_path / f"two-examples-rank{rank}.jsonl") for rank in (0, 1)]
    assert len(rank_steps[0]) == len(rank_steps[1]) == 4
    for single, rank0, rank1 in zip(single_steps, *rank_steps):
        assert (single["epoch"], single["offset"]) == (rank0["epoch"], rank0["offset"]) == (rank1["epoch"], rank1["offset"])
        assert len(rank0["examples"]) == len(rank1["examples"]) == len(single["examples"]) // 2
        assert not set(rank0["examples"]) & set(rank1["examples"])
        assert Counter(rank0["examples"] + rank1["examples"]) == Counter(single["examples"])

    two_checkpoint = latest_checkpoint(tmp_path / "two")
    assert two_checkpoint.name == "step-00000004"
    assert_same_weights(load_weights(two_checkpoint), load_weights(tmp_path / "single" / "checkpoints" / "step-00000004"))

    # Only rank 0 logged, and the logged loss is the global batch's (reduced over ranks), not rank 0's half.
    logged = [line for line in map(json.loads, (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()) if "train/loss" in line]
    single_logged = [
        line for line in map(json.loads, (tmp_path / "single" / "metrics.jsonl").read_text().splitlines()) if "train/loss" in line
    ]
    assert [line["step"] for line in logged] == [1, 2, 3, 4]
    for two_line, single_line in zip(logged, single_logged):
        assert two_line["train/loss"] == pytest.approx(single_line["train/loss"], abs=1e-5)
        assert two_line["train/mlm_accuracy"] == pytest.approx(single_line["train/mlm_accuracy"], abs=1e-6)

    # Resume the two-process run in one process: it continues from example offset 32 to the reference's step 6.
    model, task, training = build_run(*prepared, max_steps=6)
    resumed = RecordingTask(task, tmp_path / "resumed-examples.jsonl", 0)
    assert train(model, resumed, training, tmp_path / "two", {}, SINGLE_CPU, resume=True).step == 6
    assert [step["examples"] for step in read_examples(tmp_path / "resumed-examples.jsonl")] == [
        step["examples"] for step in single_steps[4:]
    ]
    assert load_trainer_state(latest_checkpoint(tmp_path / "two"))["world_size"] == 1
    assert_same_weights(
        load_weights(latest_checkpoint(tmp_path / "two")), load_weights(tmp_path / "single" / "checkpoints" / "step-00000006")
    )


def test_a_failure_on_one_rank_ends_the_job_with_its_error(prepared, tmp_path):
    result = torchrun(
        str(WORKER),
        "--shards",
        str(prepared[0]),
        "--tokenizer",
        str(prepared[1]),
        "--run-dir",
        str(tmp_path / "failing"),
        "--max-steps",
        "6",
        "--fail-on-rank",
        "1",
    )
    assert result.returncode != 0
    assert INJECTED_FAILURE.format(rank=1) in result.stdout + result.stderr
    assert latest_checkpoint(tmp_path / "failing") is None  # it stopped before its only (final) save


def test_pretrain_command_under_torchrun_writes_once_and_resumes(tmp_path):
    corpus = write_bert_text(tmp_path / "corpus.txt", synthetic_documents(120, seed=2))
    run_dir, registry = tmp_path / "run", tmp_path / "registry.sqlite"
    flags = [
        "--preset",
        "tiny",
        "--vocab-size",
        "200",
        "--min-frequency",
        "1",
        "--max-seq-length",
        "32",
        "--batch-size",
        "8",
        "--eval-every",
        "2",
        "--save-every",
        "2",
        "--log-every",
        "1",
        "--no-progress",
    ]
    result = torchrun(
        "-m", "prefine", "pretrain", "--corpus", str(corpus), "--out", str(run_dir), "--registry", str(registry), *flags, "--max-steps", "2"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("global batch 8 = 4 per process x 2 processes x 1 accumulation steps") == 1
    assert result.stdout.count("done: 2 steps") == 1
    assert (run_dir / "tokenizer").is_dir() and (run_dir / "run.json").is_file()
    with RunRegistry(registry) as runs:
        assert [(run.kind, run.status) for run in runs.list_runs()] == [("pretrain", "completed")]

    resumed = torchrun("-m", "prefine", "pretrain", "--resume", str(run_dir), "--registry", str(registry), "--max-steps", "4")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert latest_checkpoint(run_dir).name == "step-00000004"
    steps = [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines() if "train/loss" in line]
    assert steps == [1, 2, 3, 4]  # one writer: no line twice
