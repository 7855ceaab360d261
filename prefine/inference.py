"""Loading any prefine run for inference, once: `prefine predict / evaluate / fill-mask` and `prefine serve` share it.

`load_run` turns a run (its folder, or its name in the run registry) into a ready `Predictor`:
the hand-on checkpoint (best, else latest) loaded into the model its task builds, moved to the
device and put in eval mode once, with the run's own tokenizer checked against the weights. A
fine-tuned run gets the predictor of the task its run.json records (never one guessed from the
model's class); a pre-training run gets a `MaskedLMPredictor`, which
fills [MASK] tokens.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from prefine.checkpoint import RUN_FILE, TOKENIZER_DIR, is_run_dir, load_model_config, load_weights, model_checkpoint_of, read_run
from prefine.errors import PrefineError
from prefine.interop import load_into
from prefine.interop.initial_weights import check_tokenizer_matches, resolve_init
from prefine.interop.onnx_runtime import BACKENDS, require_onnx_backend, use_onnx_encoder
from prefine.model import BertForPreTraining, config_from_dict
from prefine.model.electra import ElectraPreTrainingModel, load_electra_state
from prefine.registry import RunRegistry
from prefine.registry.store import find_registry
from prefine.tasks.interface import Predictor, get_task
from prefine.tokenizer import load_tokenizer


def resolve_run_dir(run: str, registry: str = "") -> Path:
    """A run folder from a folder path, or a run name or id in the registry (found as every command finds it)."""
    path = Path(run)
    if path.is_dir():
        if not is_run_dir(path):
            raise PrefineError(f"{path} is not a prefine run (no run.json); pass the folder given as --out")
        return path

    registry_path = find_registry(registry or None)
    if not registry_path.is_file():
        raise PrefineError(
            f"run {run} not found: no such folder, and no run registry at {registry_path} to look its name up in; "
            "pass the run's folder or --registry PATH"
        )
    with RunRegistry(registry_path) as store:
        try:
            record = store.get(run)
        except PrefineError:
            raise PrefineError(f"{run} is neither a folder nor a run recorded in {registry_path}; `prefine runs` lists the runs") from None
    if not record.artifact_exists:
        raise PrefineError(f"run {record.name}'s folder {record.artifact_path} is gone (moved or deleted); pass its new location")
    return record.artifact_path


def check_backend(run_dir: Path, backend: str) -> None:
    """Refuse, in one line and before any weights load, a run `backend` cannot compute (or a missing onnx extra)."""
    if backend not in BACKENDS:
        raise PrefineError(f"--backend {backend}: choose one of {', '.join(BACKENDS)}")
    if backend == "torch":
        return
    saved = read_run(run_dir)
    if saved.get("kind") != "finetune" or not saved.get("task"):
        raise PrefineError(f"--backend {backend} runs fine-tuned runs; {run_dir} is a {saved.get('kind')} run: use --backend torch")
    task = get_task(saved["task"])
    try:
        task.onnx_outputs()  # what refuses a task without one encoder forward, for `export --format onnx` too
    except PrefineError:
        raise PrefineError(
            f"--backend {backend} runs tasks that answer in one encoder forward (those --format onnx exports); "
            f"a {task.name} run does not: use --backend torch"
        ) from None
    require_onnx_backend(backend)


def load_run(
    run: str | Path, device: torch.device | str = "cpu", registry: str = "", backend: str = "torch", cache_dir: Path | None = None
) -> Predictor | MaskedLMPredictor:
    """The run's model ready for inference, with its task's predictor (or a fill-mask predictor for pre-training).

    With `backend` "onnx" or "onnx-int8" the encoder runs in ONNX Runtime on the CPU (whatever
    `device` says), its graphs cached under `cache_dir`.
    """
    run_dir = resolve_run_dir(str(run), registry)
    check_backend(run_dir, backend)
    device = torch.device(device) if backend == "torch" else torch.device("cpu")
    saved = read_run(run_dir)
    if saved.get("kind") == "pretrain":
        return masked_lm_from_init(resolve_init(str(run_dir)), device)
    checkpoint = model_checkpoint_of(run_dir)
    head = load_model_config(checkpoint)
    config = config_from_dict(head, str(checkpoint / "config.json"))
    tokenizer = load_tokenizer(run_dir / TOKENIZER_DIR)
    check_tokenizer_matches(tokenizer, config, run_dir / TOKENIZER_DIR, checkpoint)
    kind = saved.get("kind")
    if kind != "finetune":
        raise PrefineError(f"{run_dir} is a {kind} run; pass a pre-training or fine-tuning run folder")
    # Every fine-tuning run.json prefine ever wrote names its task (the first, classification-only
    # runs included), so a missing one is damage, not an old format: guessing would rebuild another task's head.
    if not saved.get("task"):
        raise PrefineError(f"{run_dir / RUN_FILE} records no task; restore the run's own {RUN_FILE}")
    task = get_task(saved["task"])
    model = task.build_model(config, head)
    model.load_state_dict(load_weights(checkpoint))
    if backend != "torch":
        if cache_dir is None:
            raise ValueError("an ONNX backend needs the cache_dir its graphs are kept in")
        model = use_onnx_encoder(model, backend, cache_dir)
    return task.predictor(model, tokenizer, saved, head, device)


def masked_lm_from_init(init, device: torch.device) -> MaskedLMPredictor:
    """The masked LM of loaded pre-trained weights (`resolve_init`): BERT's MLM head, or an ELECTRA run's generator."""
    if init.electra is not None:
        if not init.electra.has_generator:
            raise PrefineError(
                f"{init.description} is an ELECTRA discriminator without its generator; "
                "fill-mask needs the generator (a prefine ELECTRA run has it)"
            )
        electra = ElectraPreTrainingModel(init.electra.config, init.electra.generator_config)
        load_electra_state(electra, init.electra.state_dict)
        return MaskedLMPredictor(electra, init.tokenizer, device, electra.generator_dense_logits)

    model = BertForPreTraining(init.config)
    load_into(model, init.state_dict)
    return MaskedLMPredictor(model, init.tokenizer, device)


class MaskedLMPredictor:
    """A pre-trained encoder with its MLM head (or an ELECTRA generator): top-k candidates for every [MASK] of a text."""

    input_fields = ("text",)

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer,
        device: torch.device,
        dense_logits: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    ):
        self.model = model.to(device).eval()
        if dense_logits is None:
            if not isinstance(model, BertForPreTraining):
                raise TypeError(f"a {type(model).__name__} has no MLM head of its own; pass its dense_logits")
            dense_logits = model.dense_prediction_logits
        # (input_ids, token_type_ids, attention_mask) -> vocabulary logits at every position.
        self.dense_logits = dense_logits
        self.tokenizer = tokenizer
        self.device = device
        self.mask_id = tokenizer.token_to_id("[MASK]")

    def fill_mask(self, text: str, top_k: int = 5) -> list[list[tuple[str, float]]]:
        """Top-k (token, probability) for each [MASK] in `text`, left to right."""
        encoding = self.tokenizer.encode(text)
        ids = torch.tensor([encoding.ids], device=self.device)
        positions = (ids[0] == self.mask_id).nonzero().flatten()
        if len(positions) == 0:
            raise PrefineError('the text has no [MASK] token; write it where a word should be predicted, e.g. "the [MASK] sat on the mat"')
        with torch.no_grad():
            logits = self.dense_logits(ids, torch.tensor([encoding.type_ids], device=self.device), torch.ones_like(ids))[0, positions]
        top = logits.float().softmax(-1).topk(min(top_k, logits.shape[-1]), dim=-1)
        return [
            [(self.tokenizer.id_to_token(int(token)), float(probability)) for probability, token in zip(row_p, row_t)]
            for row_p, row_t in zip(top.values.cpu(), top.indices.cpu())
        ]

    def predict_records(self, records: list[dict[str, Any]], batch_size: int = 64, top_k: int = 5) -> list[dict[str, Any]]:
        """{"text": "... [MASK] ..."} -> {"masks": [[{"token", "probability"}, ...] per mask], "filled": text with top-1 tokens}."""
        results = []
        for record in records:
            text = record.get("text")
            if not isinstance(text, str):
                raise PrefineError('each input of a pre-trained model needs "text" holding a [MASK] token')
            candidates = self.fill_mask(text, top_k)
            filled = text
            for options in candidates:
                filled = filled.replace("[MASK]", options[0][0].removeprefix("##"), 1)
            results.append(
                {"masks": [[{"token": token, "probability": p} for token, p in options] for options in candidates], "filled": filled}
            )
        return results
