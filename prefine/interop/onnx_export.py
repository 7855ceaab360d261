"""Write a prefine model's forward as an ONNX graph and check it in ONNX Runtime against the model itself.

The graph takes input_ids, attention_mask and token_type_ids (int64, [batch, sequence], both axes
dynamic) and returns the outputs the caller names (fields of the model's forward output, such as
`logits`, or `start_logits` and `end_logits`). It is traced with PyTorch's TorchScript-based
exporter (`torch.onnx.export(..., dynamo=False)`) at opset ONNX_OPSET, while every BertModel inside
runs its plain padded forward (`BertModel.padded_forward`): the usual forward unpads and groups
rows by inspecting the mask's values, which a trace would freeze at the example's shape.

Before the caller sees the file, ONNX Runtime runs it on two batches of different shapes, both
with padding, and every output must match the model's own (unpadded) forward within
PARITY_TOLERANCE; a graph that does not is an error, never a file. The onnx and onnxruntime
packages are the optional `onnx` extra.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from prefine.errors import PrefineError
from prefine.model import BertModel

# The highest opset PyTorch's TorchScript exporter writes, and its default; ONNX Runtime >= 1.17 runs it.
ONNX_OPSET = 20
PARITY_TOLERANCE = 1e-4
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
MODEL_FILE = "model.onnx"


def require_onnx() -> None:
    """Raise the one-line error naming the extra when onnx or onnxruntime is missing."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError as error:
        raise PrefineError(f"--format onnx needs the onnx extra ({error.name} is missing): pip install 'prefine[onnx]'") from None


class _GraphForward(nn.Module):
    """The model called with the graph's three inputs, answering a tuple of the named output fields."""

    def __init__(self, model: nn.Module, output_names: Sequence[str]):
        super().__init__()
        self.model = model
        self.output_names = tuple(output_names)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor) -> tuple[torch.Tensor, ...]:
        output = self.model(input_ids=input_ids, token_type_ids=token_type_ids, attention_mask=attention_mask)
        return tuple(getattr(output, name) for name in self.output_names)


@contextlib.contextmanager
def _padded_forward(model: nn.Module) -> Iterator[None]:
    encoders = [module for module in model.modules() if isinstance(module, BertModel)]
    for encoder in encoders:
        encoder.padded_forward = True
    try:
        yield
    finally:
        for encoder in encoders:
            del encoder.padded_forward  # back to the class's False


def padded_batch(lengths: Sequence[int], vocab_size: int, type_vocab_size: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random token ids in rows of the given real lengths, padded to the longest."""
    generator = torch.Generator().manual_seed(seed)
    batch, length = len(lengths), max(lengths)
    attention_mask = (torch.arange(length)[None, :] < torch.tensor(lengths)[:, None]).long()
    input_ids = torch.randint(0, vocab_size, (batch, length), generator=generator) * attention_mask
    token_type_ids = torch.zeros_like(input_ids)
    if type_vocab_size > 1:  # a second segment in the back half of each row
        token_type_ids = (torch.arange(length)[None, :] >= length // 2).long().expand(batch, length) * attention_mask
    return {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids.contiguous()}


def example_batches(vocab_size: int, type_vocab_size: int, max_length: int) -> list[dict[str, torch.Tensor]]:
    """Two padded batches of different shapes: the first is traced, both check the graph."""
    return [
        padded_batch([min(length, max_length) for length in lengths], vocab_size, type_vocab_size, seed)
        for seed, lengths in enumerate(((8, 5), (13, 3, 9)))
    ]


def model_outputs(model: nn.Module, output_names: Sequence[str], batch: dict[str, torch.Tensor]) -> list[np.ndarray]:
    """The model's own outputs (its usual forward) for one batch, as float32 arrays."""
    with torch.inference_mode():
        outputs = _GraphForward(model, output_names).eval()(**batch)
    return [output.float().numpy() for output in outputs]


def onnx_outputs(path: Path, batch: dict[str, torch.Tensor]) -> list[np.ndarray]:
    """What ONNX Runtime computes for one batch with the graph at `path`, on the CPU."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {name: batch[name].numpy() for name in INPUT_NAMES})


def max_difference(expected: list[np.ndarray], actual: list[np.ndarray]) -> float:
    """The largest absolute difference over every output (infinite where shapes differ)."""
    worst = 0.0
    for want, got in zip(expected, actual, strict=True):
        if want.shape != got.shape:
            return float("inf")
        worst = max(worst, float(np.abs(want.astype(np.float64) - got.astype(np.float64)).max(initial=0.0)))
    return worst


def write_onnx(model: nn.Module, path: Path, output_names: Sequence[str], batches: Sequence[dict[str, torch.Tensor]]) -> float:
    """Trace `model` to `path` on the first batch, check every batch in ONNX Runtime; returns the largest difference seen."""
    require_onnx()
    model = model.to("cpu", torch.float32)
    # In eval mode, wrapper included: the exporter puts the wrapper back in the mode it found it
    # in, recursively, and a wrapper left in training mode would turn the model's dropout back on.
    graph = _GraphForward(model, output_names).eval()
    dynamic_axes = {name: {0: "batch", 1: "sequence"} for name in INPUT_NAMES}
    example = tuple(batches[0][name] for name in INPUT_NAMES)
    with _padded_forward(model), torch.no_grad(), warnings.catch_warnings():
        # The TorchScript exporter announces its deprecation and tracer notes on every call; the
        # parity check below is what says whether the graph is right.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            graph,
            example,
            str(path),
            input_names=list(INPUT_NAMES),
            output_names=list(output_names),
            dynamic_axes=dynamic_axes,
            opset_version=ONNX_OPSET,
            do_constant_folding=True,
            dynamo=False,
        )
    worst = max(max_difference(model_outputs(model, output_names, batch), onnx_outputs(path, batch)) for batch in batches)
    if not worst <= PARITY_TOLERANCE:
        raise PrefineError(
            f"the ONNX graph's outputs differ from prefine's by up to {worst:.3g} (more than {PARITY_TOLERANCE:g}); nothing was exported"
        )
    return worst
