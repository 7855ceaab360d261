"""Run a task model's encoder in ONNX Runtime, in fp32 or dynamically quantized to int8, behind BertModel's own call.

`prefine predict / evaluate / serve --backend onnx|onnx-int8` keep the task's whole Python path
(tokenizing, batching, the head, the loss, probabilities, spans, tags) and swap only `model.bert`
for an `OnnxEncoder`: a module answering the same call `BertModel` answers, computed by an
`onnxruntime.InferenceSession`. The head stays in PyTorch, so every task whose model reads its
encoder through `model.bert` (all that `onnx_outputs` does not refuse) runs unchanged, and
evaluation still gets its loss from the head's own code.

Which encoder calls a task makes (the whole sequence output, or only [CLS]'s with
`first_token_only`, which skips most of the last block) is found by running the model once on a
small batch; one graph is written per call kind, with `write_onnx` (the function behind
`prefine export --format onnx`, which refuses a graph that does not match the model within
1e-4). int8 is `onnxruntime.quantization.quantize_dynamic` over the graph's MatMuls (the linear
layers): int8 weights per output channel with 7-bit range (`reduce_range`), uint8 activations
quantized with one scale per batch (so an input's int8 scores can move slightly with what is
batched beside it). Of the four per-channel/reduce_range settings this one kept the most accuracy
on a fine-tuned all-MiniLM-L6-v2 (SST-2 dev: -0.11 points against fp32; per tensor -0.8;
docs/serving.md). Without VNNI, AVX2 sums uint8 x int8 products in int16 pairs, which saturate
with full-range weights; the 7-bit range avoids that.

Graphs are cached under `<cache>/onnx/<fingerprint>/`, the fingerprint hashing the weights
themselves and everything that shapes a graph (the encoder's config, opset, torch, onnxruntime and
the quantization settings), so another checkpoint never reads a stale graph and the second call
loads in a moment. Each file appears by atomic rename of a finished one, so two processes
building the same graph, or one killed halfway, never leave a broken file under the final name;
the half-written file a kill -9 leaves is removed by the next call on that checkpoint; nothing is
written into the run folder.

Threads: the encoder's threads go to ONNX Runtime. Sessions get the thread count PyTorch had
(`torch.get_num_threads()`: --num-threads or OMP_NUM_THREADS) when the first encoder was handed
over, and PyTorch, left with the heads' few small operations, drops to one thread. Its second
thread would only wake (OMP_WAIT_POLICY PASSIVE, prefine's default) or spin to contend for the
cores ONNX Runtime's workers are on; with it gone, ONNX Runtime's own default, workers that spin
briefly between operations, was the faster setting on the 2-core benchmark machine at batch 1 and
64 (spinning workers beside two PyTorch threads were the slowest of all).
benchmarks/inference_throughput.py's `prefine onnx` side measures the result against the anchors.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn

from prefine.atomic_files import remove_dead_partials, write_atomically
from prefine.errors import PrefineError
from prefine.interop.onnx_export import ONNX_OPSET, example_batches, write_onnx
from prefine.model import BertModel

Backend = Literal["torch", "onnx", "onnx-int8"]
BACKENDS: tuple[str, ...] = ("torch", "onnx", "onnx-int8")
BACKEND_HELP = (
    "what computes the encoder: torch (PyTorch, any device), onnx (ONNX Runtime fp32 on the CPU, same predictions) or "
    "onnx-int8 (ONNX Runtime with int8 linear layers on the CPU: faster, slightly different scores; docs/serving.md); "
    "the onnx ones need the onnx extra and build the graph once per checkpoint under $PREFINE_CACHE"
)
# Bumped when the graphs written here change, so older cached graphs are never read again.
GRAPH_FORMAT = 1
# The quantization settings; part of the cache key.
INT8_SETTINGS = {"op_types": ["MatMul"], "weight_type": "QInt8", "per_channel": True, "reduce_range": True}
_CALL_NAMES = {False: "sequence", True: "first-token"}


def require_onnx_backend(backend: str) -> None:
    """The one-line error naming the extra, before any weights load, when the backend needs what is not installed."""
    if backend == "torch":
        return
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError as error:
        raise PrefineError(f"--backend {backend} needs the onnx extra ({error.name} is missing): pip install 'prefine[onnx]'") from None


def weights_fingerprint(model: nn.Module) -> str:
    """A hash of every tensor of the model's state (names, dtypes, shapes, values): which weights a graph was built from."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        value = tensor.detach().to("cpu").contiguous().reshape(-1)
        digest.update(f"{name}|{value.dtype}|{tuple(value.shape)}\n".encode())
        digest.update(value.view(torch.uint8).numpy().tobytes() if value.numel() else b"")
    return digest.hexdigest()


def _graph_key(encoder: BertModel) -> str:
    import onnxruntime

    shape = {
        "weights": weights_fingerprint(encoder),
        "config": asdict(encoder.config),
        "format": GRAPH_FORMAT,
        "opset": ONNX_OPSET,
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "int8": INT8_SETTINGS,
    }
    return hashlib.sha256(json.dumps(shape, sort_keys=True, default=str).encode()).hexdigest()[:32]


@dataclass
class _EncoderOutput:
    hidden: torch.Tensor


class _EncoderCall(nn.Module):
    """The encoder called one way, as the graph's forward: (input_ids, attention_mask, token_type_ids) -> `.hidden`."""

    def __init__(self, encoder: BertModel, first_token_only: bool):
        super().__init__()
        self.encoder = encoder
        self.first_token_only = first_token_only

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor, attention_mask: torch.Tensor) -> _EncoderOutput:
        return _EncoderOutput(self.encoder(input_ids, token_type_ids, attention_mask, first_token_only=self.first_token_only))


class _CallRecorder(nn.Module):
    """Stands in for `model.bert` during one probing forward, noting how the head calls its encoder."""

    def __init__(self, encoder: BertModel):
        super().__init__()
        self.encoder = encoder
        self.calls: set[bool] = set()
        self.causal = False

    def required_pooler(self) -> nn.Module:
        return self.encoder.required_pooler()

    def forward(self, input_ids, token_type_ids=None, attention_mask=None, causal: bool = False, first_token_only: bool = False):
        self.calls.add(bool(first_token_only))
        self.causal = self.causal or causal
        return self.encoder(input_ids, token_type_ids, attention_mask, causal=causal, first_token_only=first_token_only)


def encoder_calls(model: nn.Module) -> set[bool]:
    """Which `first_token_only` values the model's forward passes to `model.bert` (found by running it on a small batch)."""
    encoder = model.bert
    if not isinstance(encoder, BertModel):
        raise PrefineError(f"{type(model).__name__} has no BERT encoder at .bert; use --backend torch")
    config = encoder.config
    batch = example_batches(config.vocab_size, config.type_vocab_size, config.max_position_embeddings)[0]
    recorder = _CallRecorder(encoder)
    model.bert = recorder
    try:
        with torch.no_grad():
            model.eval()(input_ids=batch["input_ids"], token_type_ids=batch["token_type_ids"], attention_mask=batch["attention_mask"])
    finally:
        model.bert = encoder
    if recorder.causal or not recorder.calls:
        raise PrefineError(f"{type(model).__name__} does not read its encoder in one plain forward; use --backend torch")
    return recorder.calls


def _quantize(source: Path, target: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # The quantizer logs a recommendation to run its pre-processing first on the root logger, which
    # would reach the user's terminal; for this graph the pre-processing sped nothing up
    # (benchmarks/inference_throughput.py), so the advice is noise here.
    logging.disable(logging.WARNING)
    try:
        quantize_dynamic(
            source,
            target,
            op_types_to_quantize=INT8_SETTINGS["op_types"],
            weight_type=QuantType.QInt8,
            per_channel=bool(INT8_SETTINGS["per_channel"]),
            reduce_range=bool(INT8_SETTINGS["reduce_range"]),
        )
    finally:
        logging.disable(logging.NOTSET)


def _export(call: _EncoderCall, partial: Path, batches: list[dict[str, torch.Tensor]]) -> None:
    write_onnx(call, partial, ["hidden"], batches)


def encoder_graphs(encoder: BertModel, calls: Sequence[bool], quantized: bool, cache_dir: Path) -> dict[bool, Path]:
    """The ONNX graph of each encoder call (built, checked and cached on first use), int8 when `quantized`."""
    folder = cache_dir / "onnx" / _graph_key(encoder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise PrefineError(
            f"cannot create the ONNX graph cache {folder} ({error.strerror}); set PREFINE_CACHE to a writable folder"
        ) from None
    remove_dead_partials(folder)
    config = encoder.config
    graphs = {}
    for first_token_only in calls:
        fp32 = folder / f"{_CALL_NAMES[first_token_only]}.onnx"
        if not fp32.is_file():
            batches = example_batches(config.vocab_size, config.type_vocab_size, config.max_position_embeddings)
            call = _EncoderCall(encoder, first_token_only)
            write_atomically(fp32, functools.partial(_export, call, batches=batches))
        graph = fp32
        if quantized:
            graph = folder / f"{_CALL_NAMES[first_token_only]}-int8.onnx"
            if not graph.is_file():
                write_atomically(graph, functools.partial(_quantize, fp32))
        graphs[first_token_only] = graph
    return graphs


def session_options(threads: int):
    """ONNX Runtime settings: `threads` intra-op threads (spinning, ORT's default), one call at a time, all graph optimizations."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = max(1, threads)
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    return options


# PyTorch's thread count when the first encoder was handed to ONNX Runtime: every session gets it,
# since PyTorch itself runs on one thread from then on (a second model loaded later must not read 1).
_threads_before_handover: int | None = None


def hand_threads_to_onnx_runtime(threads: int | None = None) -> int:
    """The intra-op threads an ONNX Runtime session gets (`threads`, or PyTorch's count before any handover); PyTorch drops to one."""
    global _threads_before_handover
    if _threads_before_handover is None:
        _threads_before_handover = torch.get_num_threads()
    chosen = _threads_before_handover if threads is None else threads
    torch.set_num_threads(1)
    return max(1, chosen)


class OnnxEncoder(nn.Module):
    """What `model.bert` answers (the sequence output, or [CLS]'s with `first_token_only`), computed by ONNX Runtime on the CPU.

    The pooler stays a PyTorch module, read by heads through `required_pooler` as before.
    """

    def __init__(self, encoder: BertModel, graphs: dict[bool, Path], threads: int, backend: str):
        super().__init__()
        import onnxruntime

        self.config = encoder.config
        self.pooler = encoder.pooler
        self.backend = backend
        options = session_options(threads)
        self.sessions = {
            first_token_only: onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            for first_token_only, path in graphs.items()
        }

    def required_pooler(self) -> nn.Module:
        if self.pooler is None:
            raise ValueError("this BertModel was built without a pooling layer (add_pooling_layer=False)")
        return self.pooler

    def forward(
        self,
        input_ids: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        causal: bool = False,
        first_token_only: bool = False,
    ) -> torch.Tensor:
        session = self.sessions.get(bool(first_token_only))
        if causal or session is None:
            # Only a call the probe did not see gets here: a bug in a task, not user input.
            raise RuntimeError(f"no ONNX graph for this encoder call (causal={causal}, first_token_only={first_token_only})")
        ids = input_ids.to("cpu", torch.int64)
        feeds = {
            "input_ids": ids.numpy(),
            "attention_mask": (torch.ones_like(ids) if attention_mask is None else attention_mask.to("cpu", torch.int64)).numpy(),
            "token_type_ids": (torch.zeros_like(ids) if token_type_ids is None else token_type_ids.to("cpu", torch.int64)).numpy(),
        }
        (hidden,) = session.run(None, feeds)
        return torch.from_numpy(np.ascontiguousarray(hidden))


def use_onnx_encoder(model: nn.Module, backend: str, cache_dir: Path, threads: int | None = None) -> nn.Module:
    """Swap `model.bert` for an `OnnxEncoder` of the same weights (fp32 for "onnx", int8 for "onnx-int8"); returns the model.

    The session gets `threads` (default: PyTorch's thread count before the first handover) and
    PyTorch is left with one thread for the head (`hand_threads_to_onnx_runtime`).
    """
    require_onnx_backend(backend)
    if backend not in BACKENDS[1:]:
        raise PrefineError(f"--backend {backend}: choose one of {', '.join(BACKENDS)}")
    model = model.to("cpu", torch.float32).eval()
    calls = sorted(encoder_calls(model))
    encoder = model.bert
    assert isinstance(encoder, BertModel)  # encoder_calls refused anything else
    graphs = encoder_graphs(encoder, calls, backend == "onnx-int8", cache_dir)
    model.bert = OnnxEncoder(encoder, graphs, hand_threads_to_onnx_runtime(threads), backend)
    return model
