"""Crash harness: SIGKILL a real `prefine pretrain` or `prefine finetune` run again and again, resume it, and check nothing was lost.

One uninterrupted reference run, then the same run started as a subprocess and killed N times,
each time resumed the way a user would (`--resume` once run.json exists, else the original
command again), until it completes. Kills come two ways:

- at named crash points (`prefine.crashpoints`: inside checkpoint saves, pointer moves, pruning,
  registry transactions), by the process itself, so a test can hit each one without timing;
- from outside at seeded random moments (`--random-kills`), with every write slowed a little
  (PREFINE_SLOW_WRITES) so a good share of them land mid-write; stderr tells where each landed.

After every kill it checks that `latest` names a complete, loadable checkpoint, that the registry
is intact and shows the run as `died` (not `running`); at the end, that the final weights and
every kept checkpoint equal the reference's bit for bit, metrics.jsonl equals the reference's
(all fields but the two wall-clock ones), no temporary file or folder is left, and the registry
holds one row for the run, `completed`, with the reference's metric.

    PYTHONPATH=. python scripts/crash_soak.py --kills 40 --seed 1          # the long soak
    PYTHONPATH=. python scripts/crash_soak.py --kills 20 --crash-points    # every crash point in turn
    PYTHONPATH=. python scripts/crash_soak.py --kills 20 --stage finetune  # a fine-tuning run instead

tests/crash/test_crash_harness.py runs a short version (a few crash points) in CI.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file

# Where a kill hurts most; the harness arms them in turn (point, arrival count).
CRASH_POINTS = (
    ("atomic-write", 1),  # run.json half written, before the first step
    ("checkpoint-written", 1),  # first checkpoint complete in its temporary folder, not yet renamed
    ("checkpoint-renamed", 1),  # checkpoint in place, `latest` not yet moved
    ("registry-write", 2),  # inside a registry transaction (a heartbeat)
    ("checkpoint-pointed", 1),  # `latest` moved, old checkpoints not yet pruned
    ("checkpoint-pruning", 1),  # an old checkpoint renamed away, not yet deleted
    ("atomic-write", 2),  # inside a pointer write
    ("registry-write", 1),  # the run's row being reopened
)
# Wall-clock fields: the only ones a resumed run cannot reproduce.
TIMING_FIELDS = ("train/tokens_per_second", "train/elapsed_seconds")
TEMPORARY_MARKERS = (".tmp-", ".old-", ".partial-")


@dataclass
class HarnessConfig:
    workdir: Path
    corpus: Path
    # "finetune": the crashed run is a classification fine-tune of a short pre-training of `corpus`,
    # on `train_data` / `eval_data` (TSV with sentence and label columns).
    stage: str = "pretrain"
    train_data: Path | None = None
    eval_data: Path | None = None
    max_steps: int = 12
    save_every: int = 3
    eval_every: int = 4
    log_every: int = 2
    keep_last: int = 2
    num_threads: int = 1
    deterministic: bool = False
    python: str = sys.executable

    @property
    def registry(self) -> Path:
        return self.workdir / "registry.sqlite"

    @property
    def cache(self) -> Path:
        return self.workdir / "cache"

    def flags(self) -> list[str]:
        return [
            "--registry",
            str(self.registry),
            *(["--preset", "tiny"] if self.stage == "pretrain" else []),
            "--max-seq-length",
            "32",
            "--batch-size",
            "8",
            "--num-threads",
            str(self.num_threads),
            "--no-progress",
            "--max-steps",
            str(self.max_steps),
            "--save-every",
            str(self.save_every),
            "--eval-every",
            str(self.eval_every),
            "--log-every",
            str(self.log_every),
            "--keep-last",
            str(self.keep_last),
            *(["--deterministic"] if self.deterministic else []),
        ]

    def environment(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if not key.startswith("PREFINE_")}
        env["PREFINE_CACHE"] = str(self.cache)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[1]), env.get("PYTHONPATH")]))
        return {**env, **(extra or {})}


@dataclass
class HarnessReport:
    kills: int = 0
    launches: int = 0
    runs: int = 0  # crashed runs started (each compared with the reference at the end)
    checks_passed: int = 0
    kill_sites: Counter = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)

    def check(self, condition: bool, what: str) -> None:
        if condition:
            self.checks_passed += 1
        else:
            self.failures.append(what)

    def summary(self) -> dict:
        return {
            "runs": self.runs,
            "kills": self.kills,
            "launches": self.launches,
            "resumes": self.launches - self.runs,
            "checks_passed": self.checks_passed,
            "failures": self.failures,
            "kill_sites": dict(sorted(self.kill_sites.items())),
        }


def _run(command: list[str], config: HarnessConfig, what: str) -> None:
    completed = subprocess.run(command, env=config.environment(), capture_output=True, text=True)
    if completed.returncode != 0:
        raise RuntimeError(f"{what} failed:\n{completed.stderr}")


def reference_run(config: HarnessConfig) -> Path:
    """The uninterrupted run everything is compared with (it also trains the shared tokenizer)."""
    out = config.workdir / "reference"
    if config.stage == "finetune":
        # The weights to fine-tune: a few pre-training steps, made once and shared by every run.
        _run(
            [
                config.python,
                "-m",
                "prefine",
                "pretrain",
                "--corpus",
                str(config.corpus),
                "--out",
                str(config.workdir / "pretrained"),
                "--vocab-size",
                "300",
                "--min-frequency",
                "1",
                "--preset",
                "tiny",
                "--max-seq-length",
                "32",
                "--batch-size",
                "8",
                "--max-steps",
                "2",
                "--num-threads",
                str(config.num_threads),
                "--no-progress",
                "--registry",
                str(config.registry),
            ],
            config,
            "pre-training",
        )
    _run(original_command(config, out, None), config, "reference run")
    return out


def original_command(config: HarnessConfig, run_dir: Path, reference: Path | None) -> list[str]:
    """The command that starts the run (the reference's, or a crashed run's with the reference's tokenizer)."""
    if config.stage == "finetune":
        return [
            config.python,
            "-m",
            "prefine",
            "finetune",
            "--init",
            str(config.workdir / "pretrained"),
            "--train",
            str(config.train_data),
            "--eval",
            str(config.eval_data),
            "--out",
            str(run_dir),
            *config.flags(),
        ]
    tokenizer = ["--tokenizer", str(reference / "tokenizer")] if reference is not None else ["--vocab-size", "300", "--min-frequency", "1"]
    return [config.python, "-m", "prefine", "pretrain", "--corpus", str(config.corpus), "--out", str(run_dir), *tokenizer, *config.flags()]


def crashed_run_command(config: HarnessConfig, run_dir: Path, reference: Path) -> list[str]:
    """What a user runs next: --resume once the run folder holds a run, else the original command."""
    if (run_dir / "run.json").exists():
        return [config.python, "-m", "prefine", config.stage, "--resume", str(run_dir), "--registry", str(config.registry)]
    return original_command(config, run_dir, reference)


def checkpoint_is_complete(checkpoint: Path) -> bool:
    try:
        load_file(checkpoint / "model.safetensors")
        torch.load(checkpoint / "trainer_state.pt", map_location="cpu", weights_only=True)
        json.loads((checkpoint / "config.json").read_text())
        return True
    except Exception:  # noqa: BLE001 - any failure to read means incomplete
        return False


def registry_rows(config: HarnessConfig, run_dir: Path) -> list:
    if not config.registry.exists():
        return []
    from prefine.registry.store import RunRegistry

    with RunRegistry(config.registry) as registry:
        return [run for run in registry.list_runs() if run.artifact_path == run_dir.resolve()]


def check_after_kill(config: HarnessConfig, run_dir: Path, report: HarnessReport) -> None:
    pointer = run_dir / "checkpoints" / "latest"
    if pointer.exists():
        target = run_dir / "checkpoints" / pointer.read_text().strip()
        report.check(checkpoint_is_complete(target), f"after kill {report.kills}: latest -> {target.name} is not a complete checkpoint")
    if config.registry.exists():
        connection = sqlite3.connect(config.registry)
        report.check(connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok", f"after kill {report.kills}: registry corrupt")
        connection.close()
    rows = registry_rows(config, run_dir)
    report.check(len(rows) <= 1, f"after kill {report.kills}: {len(rows)} registry rows for one run")
    for row in rows:
        report.check(row.status != "running" or row.died, f"after kill {report.kills}: registry shows the killed run as running, not died")


def kill_site(run_dir: Path, stderr: str) -> str:
    """Where a kill landed, from the last crash point announced and what it left on disk."""
    leftovers = [path.name for path in run_dir.rglob("*") if any(marker in path.name for marker in TEMPORARY_MARKERS)]
    announced = [line.split(" ", 1)[1] for line in stderr.splitlines() if line.startswith("crash-point ")]
    site = f"after {announced[-1]}" if announced else ("before run.json" if not (run_dir / "run.json").exists() else "between writes")
    return site + (" (left temporaries)" if leftovers else "")


def final_checks(config: HarnessConfig, run_dir: Path, reference: Path, report: HarnessReport) -> None:
    reference_weights = load_file(
        reference / "checkpoints" / (reference / "checkpoints" / "latest").read_text().strip() / "model.safetensors"
    )
    latest_name = (run_dir / "checkpoints" / "latest").read_text().strip()
    report.check(latest_name == f"step-{config.max_steps:08d}", f"final latest is {latest_name}")
    weights = load_file(run_dir / "checkpoints" / latest_name / "model.safetensors")
    report.check(
        weights.keys() == reference_weights.keys() and all(torch.equal(weights[key], reference_weights[key]) for key in weights),
        "final weights differ from the uninterrupted run's",
    )
    for checkpoint in sorted((run_dir / "checkpoints").glob("step-*")):
        twin = reference / "checkpoints" / checkpoint.name
        if twin.exists():
            mine, theirs = load_file(checkpoint / "model.safetensors"), load_file(twin / "model.safetensors")
            report.check(all(torch.equal(mine[key], theirs[key]) for key in mine), f"{checkpoint.name} differs from the reference's")
    report.check(read_metrics(run_dir) == read_metrics(reference), "metrics.jsonl differs from the uninterrupted run's")
    leftovers = [
        str(path)
        for root in (run_dir, config.cache)
        for path in root.rglob("*")
        if any(marker in path.name for marker in TEMPORARY_MARKERS)
    ]
    report.check(not leftovers, f"temporaries left behind: {leftovers}")
    rows, reference_rows = registry_rows(config, run_dir), registry_rows(config, reference)
    report.check(len(rows) == 1, f"{len(rows)} registry rows for the crashed run (want 1)")
    if rows and reference_rows:
        row = rows[0]
        report.check(row.status == "completed", f"final registry status {row.status}")
        report.check(row.key_metric == reference_rows[0].key_metric, f"registry metric {row.key_metric} != {reference_rows[0].key_metric}")
        report.check(row.last_step == config.max_steps, f"registry last step {row.last_step}")


def read_metrics(run_dir: Path) -> list[dict]:
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{key: value for key, value in record.items() if key not in TIMING_FIELDS} for record in records]


def launch(config: HarnessConfig, run_dir: Path, reference: Path, extra_env: dict[str, str], kill_after: float | None) -> tuple[int, str]:
    """One `prefine pretrain` process (new or resumed), SIGKILLed after `kill_after` seconds if still running."""
    process = subprocess.Popen(
        crashed_run_command(config, run_dir, reference),
        env=config.environment(extra_env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    if kill_after is not None:
        try:
            process.wait(timeout=kill_after)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
    _, stderr = process.communicate()
    return process.returncode, stderr


def crash_and_finish(
    config: HarnessConfig, run_dir: Path, reference: Path, kills: list[tuple[str, object]], report: HarnessReport, max_launches: int = 200
) -> None:
    """Launch the run once per planned kill (each resuming the last), then once more to finish it; then check it."""
    launches = 0
    finished = False
    report.runs += 1
    for kind, plan in [*kills, ("none", None)]:
        if finished and kind == "random":
            continue  # the run completed before this kill: the next round starts a new run for it
        while launches < max_launches:
            launches += 1
            report.launches += 1
            if kind == "point":
                code, stderr = launch(config, run_dir, reference, {"PREFINE_CRASH_AT": f"{plan[0]}:{plan[1]}"}, None)
            elif kind == "random":
                delay, slow_writes = plan
                code, stderr = launch(config, run_dir, reference, {"PREFINE_SLOW_WRITES": str(slow_writes)}, delay)
            else:
                code, stderr = launch(config, run_dir, reference, {}, None)
            if code == -signal.SIGKILL:
                report.kills += 1
                site = f"{plan[0]} #{plan[1]}" if kind == "point" else kill_site(run_dir, stderr)
                report.kill_sites[f"{kind}: {site}"] += 1
                check_after_kill(config, run_dir, report)
            elif code != 0:
                report.failures.append(f"{run_dir.name} launch {launches} exited {code}: {stderr.strip().splitlines()[-1:]}")
                return
            elif kind == "point":
                report.kill_sites[f"not reached: {plan[0]} #{plan[1]}"] += 1
            else:
                finished = True
            break
    final_checks(config, run_dir, reference, report)


def run_harness(
    config: HarnessConfig,
    crash_points: list[tuple[str, int]] | None = None,
    random_kills: int = 0,
    seed: int = 0,
    slow_writes: float = 0.02,
) -> HarnessReport:
    """Reference run; then one run killed at each crash point in turn; then runs killed at random
    moments until `random_kills` kills have landed (a new run whenever one finishes first)."""
    config.workdir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    reference = reference_run(config)
    full_run_seconds = time.monotonic() - started
    report = HarnessReport()
    if crash_points:
        crash_and_finish(config, config.workdir / "crashed", reference, [("point", point) for point in crash_points], report)
    rng = random.Random(seed)
    round_number = empty_rounds = 0
    while report.kills - len(crash_points or []) < random_kills and not report.failures and empty_rounds < 3:
        round_number += 1
        run_dir = config.workdir / f"crashed-random-{round_number}"
        kills_before = report.kills
        # Kill moments anywhere from start-up to the length of a whole uninterrupted run.
        planned = [
            ("random", (rng.uniform(0.2, 1.0) * full_run_seconds, slow_writes))
            for _ in range(random_kills - (report.kills - len(crash_points or [])))
        ]
        crash_and_finish(config, run_dir, reference, planned, report)
        # A run can finish before its first kill lands; three such runs in a row: they are too short to kill.
        empty_rounds = empty_rounds + 1 if report.kills == kills_before else 0
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, default=Path("crash-soak"))
    parser.add_argument("--kills", type=int, default=30, help="random SIGKILLs from outside")
    parser.add_argument("--crash-points", action="store_true", help="also kill once at every crash point first")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-steps", type=int, default=40)
    parser.add_argument("--save-every", type=int, default=5)
    parser.add_argument("--num-threads", type=int, default=1)
    parser.add_argument("--deterministic", action="store_true")
    parser.add_argument("--stage", choices=["pretrain", "finetune"], default="pretrain", help="the kind of run to crash")
    parser.add_argument("--slow-writes", type=float, default=0.02, help="seconds each crash point pauses under random kills")
    args = parser.parse_args()
    if args.workdir.exists() and any(args.workdir.iterdir()):
        parser.error(f"{args.workdir} is not empty; pass a new --workdir")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.conftest import synthetic_documents, write_bert_text, write_review_tsv

    args.workdir.mkdir(parents=True, exist_ok=True)
    corpus = write_bert_text(args.workdir / "corpus.txt", synthetic_documents(120))
    config = HarnessConfig(
        args.workdir.resolve(),
        corpus.resolve(),
        max_steps=args.max_steps,
        save_every=args.save_every,
        eval_every=args.save_every * 2,
        num_threads=args.num_threads,
        deterministic=args.deterministic,
        stage=args.stage,
        train_data=write_review_tsv(args.workdir / "train.tsv", 200, 1).resolve(),
        eval_data=write_review_tsv(args.workdir / "dev.tsv", 40, 2).resolve(),
    )
    started = time.monotonic()
    report = run_harness(config, list(CRASH_POINTS) if args.crash_points else None, args.kills, args.seed, args.slow_writes)
    summary = {**report.summary(), "seconds": round(time.monotonic() - started, 1), "max_steps": args.max_steps, "seed": args.seed}
    for site, count in summary["kill_sites"].items():
        print(f"{count:4d}  {site}")
    print(
        f"runs {report.runs}, kills {report.kills}, resumes {report.launches - report.runs}, "
        f"checks passed {report.checks_passed}, failures {len(report.failures)}"
    )
    for failure in report.failures:
        print(f"FAILED: {failure}")
    print(json.dumps(summary))
    return 0 if not report.failures else 1


if __name__ == "__main__":
    sys.exit(main())
