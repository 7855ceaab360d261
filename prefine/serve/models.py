"""The runs `prefine serve` answers for: each loaded once through `load_run`, named, and described for clients.

A served model is whatever `prefine.inference.load_run` returns for a run (a fine-tuned task's
`Predictor`, or a `MaskedLMPredictor` for a pre-training run); the server only ever calls its
`predict_records`. What a client needs to know to call it is read from the predictor, not from
a table of tasks: `input_fields` (what one input holds) and the keyword options `predict_records`
accepts beyond the records themselves (fill-mask's `top_k`, a generation task's decoding
options), with the type of their defaults. A task added later is served without changes here.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from prefine.checkpoint import read_run
from prefine.errors import PrefineError
from prefine.inference import load_run, resolve_run_dir

# Parameters of predict_records that the server sets itself, never a client.
_SERVER_PARAMETERS = {"self", "records", "batch_size"}


@dataclass(frozen=True)
class RunReference:
    """A run named on the command line: `RUN` (a folder or a registry name) or `NAME=RUN`."""

    name: str
    run_dir: Path

    @classmethod
    def parse(cls, argument: str, registry: str) -> RunReference:

        alias = ""
        target = argument
        if "=" in argument and not Path(argument).exists():
            alias, target = argument.split("=", 1)
            if not alias or not target:
                raise PrefineError(f"{argument!r}: write a renamed run as NAME=RUN, e.g. sentiment=runs/ko-sentiment")
        run_dir = resolve_run_dir(target, registry)
        return cls(alias or (target if not Path(target).is_dir() else run_dir.resolve().name), run_dir)


@dataclass
class ServedModel:
    name: str
    run_dir: Path
    kind: str  # "finetune" or "pretrain"
    task: str  # the fine-tuning task's name, or "fill-mask" for a pre-training run
    description: str
    predictor: Any
    input_fields: tuple[str, ...]
    options: dict[str, Any] = field(default_factory=dict)  # option name -> default value
    backend: str = "torch"  # what computes the encoder (`prefine serve --backend`)

    @property
    def streams(self) -> bool:
        """Whether the predictor can stream partial outputs (`stream_records`, see prefine.serve.app)."""
        return callable(getattr(self.predictor, "stream_records", None))

    def describe(self) -> dict[str, Any]:
        """What /v1/models tells a client about this model."""
        return {
            "name": self.name,
            "kind": self.kind,
            "task": self.task,
            "description": self.description,
            "run": str(self.run_dir),
            "input_fields": list(self.input_fields),
            "options": self.options,
            "streams": self.streams,
            "backend": self.backend,
        }

    def check_options(self, options: dict[str, Any]) -> None:
        """Reject options this model does not take, or of the wrong type, before the request is queued."""
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            accepted = ", ".join(self.options) or "none"
            raise PrefineError(f"model {self.name} takes no option {', '.join(unknown)}; its options: {accepted}")
        for key, value in options.items():
            default = self.options[key]
            expected = type(default)
            if default is None or (expected is float and isinstance(value, (int, float)) and not isinstance(value, bool)):
                continue
            if type(value) is not expected:
                raise PrefineError(f"option {key} of model {self.name} must be a {expected.__name__} (default {default!r}); got {value!r}")


def predictor_options(predictor: Any) -> dict[str, Any]:
    """The keyword options of `predictor.predict_records` a client may set, with their defaults."""
    signature = inspect.signature(predictor.predict_records)
    return {
        name: parameter.default
        for name, parameter in signature.parameters.items()
        if name not in _SERVER_PARAMETERS
        and parameter.default is not inspect.Parameter.empty
        and parameter.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    }


def load_served_model(reference: RunReference, device: torch.device, backend: str = "torch", cache_dir: Path | None = None) -> ServedModel:
    """Load one run for serving (eval mode, on `device`, its encoder computed by `backend`) and describe it."""

    predictor = load_run(reference.run_dir, device, backend=backend, cache_dir=cache_dir)
    saved = read_run(reference.run_dir)
    task = getattr(predictor, "task", None)
    if task is not None:
        task_name, description = task.name, task.help
    else:
        task_name, description = "fill-mask", "a pre-trained encoder: top candidates for every [MASK] in a text"
    return ServedModel(
        name=reference.name,
        run_dir=reference.run_dir,
        kind=str(saved.get("kind")),
        task=task_name,
        description=description,
        predictor=predictor,
        input_fields=tuple(getattr(predictor, "input_fields", ("text",))),
        options=predictor_options(predictor),
        backend=backend,
    )


def check_unique_names(references: list[RunReference]) -> None:
    seen: dict[str, Path] = {}
    for reference in references:
        if reference.name in seen:
            raise PrefineError(
                f"two runs would both be served as {reference.name!r} ({seen[reference.name]} and {reference.run_dir}); "
                f"rename one with NAME=RUN, e.g. {reference.name}-2={reference.run_dir}"
            )
        seen[reference.name] = reference.run_dir
