"""`prefine generate`: write text with a fine-tuned generation run.

The run's task decides whether it generates text (`FinetuneTask.generates_text`) and how its
inputs are read and its outputs written (its `TextGenerator` predictor); this command names no task.
`--text "..."` generates for one input and prints the tokens as they are decoded (greedy and
sampling; a beam search prints its winner at the end). `--data FILE` generates for every input
of a file (.jsonl/.tsv/.csv with the run's source column, or .txt with one input per line) and
writes one JSON line per input, in input order, to `--output` (or stdout). The decoding flags
(`--num-beams`, `--do-sample`, `--top-p`, ...) are the run's task's `DecodingConfig`, the same
ones `prefine predict` takes for a generation run.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from prefine.atomic_files import check_output_path, remove_dead_partials_of, write_atomically
from prefine.config import add_dataclass_arguments, from_args, option
from prefine.errors import PrefineError
from prefine.generation.decoding import DecodingConfig
from prefine.inference import load_run
from prefine.tasks.interface import TextGenerator, all_tasks
from prefine.training import resolve_device


@dataclass
class GenerateConfig:
    run: str = option("", "a fine-tuned generation run: its folder, or its name in the registry", positional=True)
    text: str | None = option(None, "one input to generate from; the output streams as it is decoded")
    data: str = option("", "a file of inputs: .jsonl/.tsv/.csv with the run's source column, or .txt with one input per line")
    output: str = option("-", "where --data's generations go, one JSON line per input (- for stdout)")
    batch_size: int = option(32, "inputs generated together")
    registry: str = option("", "registry to look a run name up in (default: $PREFINE_REGISTRY or runs/registry.sqlite)")


def add_command(subparsers) -> None:
    parser = subparsers.add_parser(
        "generate", help="generate text with a fine-tuned generation run (--text streams tokens; --data writes a file)"
    )
    add_dataclass_arguments(parser, GenerateConfig)
    add_dataclass_arguments(parser.add_argument_group("decoding"), DecodingConfig)
    parser.set_defaults(func=generate_from_args)


def generate_from_args(args: argparse.Namespace) -> int:

    config = from_args(GenerateConfig, args)
    decoding = from_args(DecodingConfig, args)
    if (config.text is None) == (not config.data):
        raise PrefineError('pass either --text "..." or --data FILE')
    if config.text is not None and not config.text.strip():
        raise PrefineError("--text is empty; give the text to generate from")
    if config.batch_size < 1:
        raise PrefineError(f"--batch-size {config.batch_size} must be at least 1")
    if config.output != "-":
        check_output_path(Path(config.output), "--output")
    predictor = load_run(config.run, resolve_device("auto"), config.registry)
    # The run's own task says whether it writes text; its predictor then offers the `TextGenerator` methods.
    task = getattr(predictor, "task", None)
    if task is None or not task.generates_text:
        kind = getattr(task, "name", "pre-training")
        generating = ", ".join(f"--task {each.name}" for each in all_tasks() if each.generates_text)
        raise PrefineError(f"{config.run} is a {kind} run; prefine generate needs a run fine-tuned with {generating}")
    if not isinstance(predictor, TextGenerator):
        raise TypeError(f"a {task.name} run generates text, so its predictor should be a TextGenerator, not a {type(predictor).__name__}")
    generator = predictor
    if config.text is not None:
        generator.stream(config.text, decoding, lambda piece: (sys.stdout.write(piece), sys.stdout.flush()))
        sys.stdout.write("\n")
        return 0
    texts = generator.read_inputs(config.data, sys.stdin)
    if not texts:
        raise PrefineError(f"{config.data} holds no inputs to generate from")
    generated = generator.generate_texts(texts, decoding, config.batch_size)
    if config.output == "-":
        generator.write_generations(texts, generated, sys.stdout)
        return 0
    output = Path(config.output)
    remove_dead_partials_of(output)

    def write(partial: Path) -> None:
        with open(partial, "w", encoding="utf-8") as handle:
            generator.write_generations(texts, generated, handle)

    write_atomically(output, write)  # never a half-written file under the requested name
    print(f"{len(texts)} generations written to {output}", file=sys.stderr)
    return 0
