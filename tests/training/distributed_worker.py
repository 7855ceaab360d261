"""One rank of the multi-process training tests, started by torchrun from test_distributed.py.

It trains the same tiny pre-training run that the test builds in its own (single) process with
`build_run`, and writes, per rank, a hash of every example it trained on, so the test can check
that ranks share the data without overlap and that the weights match one process with the whole
batch. `--fail-on-rank R` makes rank R raise partway through, as a corrupt input seen by one
rank would, to check that the whole job stops with that error instead of hanging.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import torch

from prefine.model import BertForPreTraining, preset_config
from prefine.objectives.masked_lm import PretrainingTask
from prefine.pretraining_data import PretrainingBatches, PretrainingDataConfig, TokenShards
from prefine.tokenizer import load_tokenizer
from prefine.training import TrainingConfig, init_distributed, train

SEED = 11
GLOBAL_BATCH = 8
INJECTED_FAILURE = "injected failure: rank {rank} read a corrupt batch"


def build_run(shards_dir: Path, tokenizer_dir: Path, max_steps: int, save_every: int = 0):
    """Model, task and config of the test run; dropout off so one and two processes compute the same."""
    tokenizer = load_tokenizer(tokenizer_dir)
    shards = TokenShards.open(shards_dir)
    # A constant learning rate: a run resumed with a larger max_steps then follows the same schedule.
    training = TrainingConfig(
        max_steps=max_steps,
        batch_size=GLOBAL_BATCH,
        learning_rate=1e-3,
        warmup_steps=0,
        schedule="constant",
        log_every=1,
        eval_every=0,
        save_every=save_every,
        keep_last=5,
        progress=False,
        seed=SEED,
        device="cpu",
    )
    batches = PretrainingBatches.from_tokenizer(shards, tokenizer, PretrainingDataConfig(max_seq_length=32), SEED, GLOBAL_BATCH)
    torch.manual_seed(SEED)
    config = preset_config(
        "tiny",
        vocab_size=tokenizer.get_vocab_size(),
        hidden_size=32,
        intermediate_size=64,
        num_attention_heads=2,
        max_position_embeddings=64,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    task = PretrainingTask(batches, batches.eval_batches(GLOBAL_BATCH), torch.device("cpu"))
    return BertForPreTraining(config), task, training


def example_hashes(batch: dict) -> list[str]:
    """One hash per example: its (masked) tokens without padding."""
    rows = [ids[mask.bool()] for ids, mask in zip(batch["input_ids"], batch["attention_mask"])]
    return [hashlib.sha256(row.numpy().tobytes()).hexdigest()[:16] for row in rows]


class RecordingTask:
    """The task, plus a log of which examples this rank trained on (and an optional injected failure)."""

    def __init__(self, task, log_path: Path, fail_at_call: int):
        self.task, self.log_path, self.fail_at_call, self.calls = task, log_path, fail_at_call, 0

    def __getattr__(self, name):
        return getattr(self.task, name)

    def batch_at(self, position, rank, world_size):
        self.calls += 1
        if self.calls == self.fail_at_call:
            raise RuntimeError(INJECTED_FAILURE.format(rank=rank))
        batch, next_position = self.task.batch_at(position, rank, world_size)
        with open(self.log_path, "a", encoding="utf-8") as log:
            log.write(json.dumps({"epoch": position.epoch, "offset": position.offset, "examples": example_hashes(batch)}) + "\n")
        return batch, next_position


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shards", type=Path, required=True)
    parser.add_argument("--tokenizer", type=Path, required=True)
    parser.add_argument("--run-dir", type=Path, required=True)
    parser.add_argument("--max-steps", type=int, required=True)
    parser.add_argument("--fail-on-rank", type=int, default=-1)
    args = parser.parse_args()

    context = init_distributed("cpu")
    model, task, training = build_run(args.shards, args.tokenizer, args.max_steps)
    fail_at_call = 3 if context.rank == args.fail_on_rank else 0
    log_path = args.run_dir.parent / f"{args.run_dir.name}-examples-rank{context.rank}.jsonl"
    train(model, RecordingTask(task, log_path, fail_at_call), training, args.run_dir, {}, context)


if __name__ == "__main__":
    main()
