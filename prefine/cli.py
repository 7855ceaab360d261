"""The `prefine` command line: one verb per recipe, and one place that turns errors into one line.

A `PrefineError` (bad input, a mismatched checkpoint, a full disk) prints as a single line with
the fix and exits 2; Ctrl-C exits 130 after the training loop has saved its checkpoint. Anything
else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from prefine import __version__, determinism
from prefine.errors import PrefineError

if TYPE_CHECKING:  # the CLI imports torch-heavy modules only when a command needs them
    from prefine.training import TrainingInterrupted


class _OneLineErrors(argparse.ArgumentParser):
    """argparse, but a bad flag is one line naming it and where the flags are listed, not the whole usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    # Imported here, after main() has set the environment torch reads when it loads (--deterministic).
    from prefine.recipes import compare, fill_mask, finetune, generate, predict, pretrain, quickstart, suite
    from prefine.recipes import serve as serve_recipe
    from prefine.recipes.export import add_export_command
    from prefine.registry import add_registry_commands

    parser = _OneLineErrors(
        prog="prefine",
        description="Pre-train a BERT encoder on your own corpus, then fine-tune it on your task.",
    )
    parser.add_argument("--version", action="version", version=f"prefine {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    quickstart.add_command(subparsers)
    pretrain.add_command(subparsers)
    fill_mask.add_command(subparsers)
    finetune.add_command(subparsers)
    predict.add_commands(subparsers)
    generate.add_command(subparsers)
    compare.add_command(subparsers)
    suite.add_command(subparsers)
    add_export_command(subparsers)
    add_registry_commands(subparsers)
    serve_recipe.add_command(subparsers)
    return parser


def _resume_hint(interrupt: TrainingInterrupted, args: argparse.Namespace) -> str:
    """Where the interrupted run's checkpoint is and the command that continues it.

    Only `pretrain` and `finetune` take --resume; the quickstart and compare start their runs
    afresh, so for them the saved checkpoint is all there is to say.
    """
    from prefine.recipes.common import run_dir_of_checkpoint  # loaded by then; a module-level import would load torch early

    if interrupt.checkpoint is None:
        return ""
    where = f"; checkpoint saved at {interrupt.checkpoint}"
    run_dir = run_dir_of_checkpoint(Path(interrupt.checkpoint))
    if not hasattr(args, "resume") or run_dir is None:
        return where
    return f"{where}; continue with: prefine {args.command} --resume {run_dir}"


def main(argv: list[str] | None = None) -> int:
    if determinism.requested(sys.argv[1:] if argv is None else list(argv)):
        determinism.prepare_environment()  # before torch loads: some settings are read only then
    from prefine.training import TrainingInterrupted  # torch loads here, after the environment above is set

    # Stage modules report their choices (detected corpus format, text column) through logging.
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        args = build_parser().parse_args(argv)
        return int(args.func(args) or 0)
    except PrefineError as error:
        print(f"prefine: error: {error}", file=sys.stderr)
        return 2
    except TrainingInterrupted as interrupt:
        print(f"prefine: interrupted at step {interrupt.step}{_resume_hint(interrupt, args)}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("prefine: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `prefine predict ... | head` closes the pipe early; that is not an error.
        return 0
    finally:
        _leave_process_group()


def _leave_process_group() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
