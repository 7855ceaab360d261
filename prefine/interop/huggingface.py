"""Import Hugging Face BERT checkpoints: config, weights (safetensors or a safe .bin), tokenizer.

(ELECTRA checkpoints are read by `prefine.interop.electra` and handed on in the same form.)

A Hugging Face BERT folder (or a Hub name, downloaded once) becomes a `BertConfig`, a state
dict and a `tokenizers.Tokenizer` that give the same outputs as transformers. The weight names
already match ours (the model code mirrors Hugging Face's); what varies between checkpoints is
handled by `load_into`:

- saves of a bare `BertModel` (sentence-transformers, feature extractors) lack the "bert."
  prefix and every head;
- old TensorFlow conversions name LayerNorm parameters "gamma"/"beta";
- older transformers store the tied MLM decoder and a `position_ids` buffer; a config.json with
  `tie_word_embeddings: false` has an MLM decoder matrix of its own, which loads as one;
- a checkpoint may hold heads our model lacks (ignored) or lack heads ours has (kept freshly
  initialized and reported, so that nobody mistakes a random head for a trained one).

Conversions fail silently when they fail (field notes: NaN logits, models that never converge),
so every mismatch that would change the outputs is an error, never a guess.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from torch import nn

from prefine.checkpoint import RUN_FILE
from prefine.errors import PrefineError
from prefine.interop.electra import import_hf_electra, is_electra_config_json

# The folder layout and weight readers live one layer down, shared with the ELECTRA importer;
# they stay importable from here, where callers have always found them.
from prefine.interop.hf_files import (  # noqa: F401
    CONFIG_FILE,
    PYTORCH_FILE,
    PYTORCH_INDEX,
    SAFETENSORS_FILE,
    SAFETENSORS_INDEX,
    WEIGHT_FILES,
    is_hf_model_dir,
    load_hf_state_dict,
)
from prefine.jsonio import read_json_object
from prefine.model.config import BertConfig, config_from_dict
from prefine.model.electra import ElectraWeights
from prefine.tokenizer import normalizer_settings

TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")

# transformers' MLM decoder: tied, its matrix is the word embeddings and its bias is
# cls.predictions.bias (our model stores each once); untied, the matrix is the head's own.
DECODER_WEIGHT = "cls.predictions.decoder.weight"
DECODER_BIAS = "cls.predictions.decoder.bias"
MLM_BIAS = "cls.predictions.bias"
WORD_EMBEDDINGS = "embeddings.word_embeddings.weight"
# Buffers older transformers saved; they are recomputed, never learned.
BUFFER_SUFFIXES = ("embeddings.position_ids", "embeddings.token_type_ids")

# Parts of a model that may be absent from a checkpoint and then start from our own init.
HEAD_DESCRIPTIONS = {
    "cls.predictions": "cls.predictions (MLM head)",
    "cls.seq_relationship": "cls.seq_relationship (NSP head)",
    "classifier": "classifier",
    "qa_outputs": "qa_outputs",
    "bert.pooler": "bert.pooler (pooler)",
    "pooler": "pooler",
}


def load_hf_config(directory: Path) -> BertConfig:
    """Read a Hugging Face config.json into our BertConfig, refusing anything that is not plain BERT."""
    path = Path(directory) / CONFIG_FILE
    values = read_json_object(
        path,
        fix="re-download the model",
        missing=f"{path} not found; point at a Hugging Face BERT folder (config.json + model.safetensors)",
    )
    for architecture in values.get("architectures") or []:
        if not architecture.startswith("Bert"):
            raise PrefineError(f"{path}: architectures '{architecture}' is not a BERT model; prefine imports BERT checkpoints only")
    for flag in ("is_decoder", "add_cross_attention"):
        if values.get(flag):
            raise PrefineError(f"{path}: {flag} is true; prefine imports bidirectional BERT encoders only")
    return config_from_dict(values, str(path))


@dataclass
class ImportReport:
    """What `load_into` did with each part of the model."""

    loaded: list[str] = field(default_factory=list)  # our parameter names filled from the checkpoint
    newly_initialized: list[str] = field(default_factory=list)  # heads the checkpoint lacked, kept at our init
    ignored: list[str] = field(default_factory=list)  # checkpoint names our model has no use for

    def summary(self) -> str:
        parts = [f"loaded {len(self.loaded)} tensors"]
        if self.newly_initialized:
            parts.append(f"newly initialized: {', '.join(self.newly_initialized)}")
        if self.ignored:
            parts.append(f"ignored: {', '.join(self.ignored)}")
        return "; ".join(parts)


def _rename_legacy(name: str) -> str:
    # TensorFlow BERT called LayerNorm's scale and shift gamma and beta.
    return re.sub(r"LayerNorm\.gamma$", "LayerNorm.weight", re.sub(r"LayerNorm\.beta$", "LayerNorm.bias", name))


def _encoder_prefix(names) -> str | None:
    """'bert.' or '' for where the encoder's weights live in a state dict; None if it holds none."""
    for name in names:
        if name.startswith("bert.embeddings.") or name.startswith("bert.encoder."):
            return "bert."
    for name in names:
        if name.startswith("embeddings.") or name.startswith("encoder."):
            return ""
    return None


def _is_encoder_name(name: str, prefix: str) -> bool:
    return name.startswith(prefix + "embeddings.") or name.startswith(prefix + "encoder.") or name.startswith(prefix + "pooler.")


def _head_of(name: str) -> str:
    for head in HEAD_DESCRIPTIONS:
        if name.startswith(head + "."):
            return head
    return name.rsplit(".", 1)[0]


def _untied_decoder_error(what: str) -> PrefineError:
    return PrefineError(
        f"the checkpoint's {what} differs from the word embeddings although its config.json ties them (tie_word_embeddings true); "
        'set "tie_word_embeddings": false in its config.json if the MLM head is meant to have its own matrix, '
        "or fine-tune from it (fine-tuning does not use the MLM head)"
    )


def _resolve_decoder(state: dict[str, torch.Tensor], prefix: str, ours: dict[str, torch.Tensor], ignored: list[str]) -> None:
    """Settle transformers' second copy of the MLM head, `cls.predictions.decoder.*`, before loading by name.

    transformers scores with the decoder's bias: it is cls.predictions.bias itself when the head
    is tied, the one in use when it is untied, and the only copy in some old saves. The decoder's
    matrix loads into an untied head (a tied checkpoint's is its embedding table); for a tied head
    it must equal the embeddings, since a tied head cannot reproduce anything else.
    """
    decoder_weight = state.pop(DECODER_WEIGHT, None)
    decoder_bias = state.pop(DECODER_BIAS, None)
    if decoder_bias is not None:
        state[MLM_BIAS] = decoder_bias
    embeddings = state.get(prefix + WORD_EMBEDDINGS)
    if DECODER_WEIGHT in ours:
        projection = decoder_weight if decoder_weight is not None else embeddings
        if projection is not None and MLM_BIAS in state:  # a checkpoint without an MLM head leaves the whole head fresh
            state[DECODER_WEIGHT] = projection.clone()
        return
    if decoder_weight is not None and embeddings is not None and not torch.equal(decoder_weight, embeddings):
        if MLM_BIAS in ours:
            raise _untied_decoder_error(DECODER_WEIGHT)
        ignored.append(DECODER_WEIGHT)


def load_into(model: nn.Module, hf_state: dict[str, torch.Tensor], strict_encoder: bool = True) -> ImportReport:
    """Copy a Hugging Face (or prefine) BERT state dict into one of our models, by name.

    The encoder must load completely (else PrefineError naming the first missing weight, unless
    `strict_encoder=False`, which reports it as newly initialized instead). Heads the checkpoint
    lacks keep the model's own initialization and are listed in `newly_initialized`; a head whose
    shape differs (a classifier with another number of labels) is treated the same way. Shape
    mismatches in the encoder (a different vocabulary or width) are errors.
    """
    ours = model.state_dict()
    our_prefix = _encoder_prefix(ours) or ""
    report = ImportReport()

    state: dict[str, torch.Tensor] = {}
    for name, tensor in hf_state.items():
        if name.endswith(BUFFER_SUFFIXES):
            continue
        state[_rename_legacy(name)] = tensor
    their_prefix = _encoder_prefix(state)
    if their_prefix is None:
        raise PrefineError("the checkpoint holds no BERT encoder weights (no embeddings.* or encoder.* tensors); is it a BERT model?")
    _resolve_decoder(state, their_prefix, ours, report.ignored)

    mapped: dict[str, torch.Tensor] = {}
    for name, tensor in state.items():
        if _is_encoder_name(name, their_prefix):
            mapped[our_prefix + name[len(their_prefix) :]] = tensor
        else:
            mapped[name] = tensor

    # Decide per part (a whole head, or a single encoder weight) whether it loads or starts fresh.
    fresh: dict[str, str] = {}  # part -> why it keeps the model's own initialization
    for name, current in ours.items():
        incoming = mapped.get(name)
        if _is_encoder_name(name, our_prefix) and not name.startswith(our_prefix + "pooler."):
            if incoming is None and strict_encoder:
                raise PrefineError(f"the checkpoint lacks the encoder weight {name}; it is incomplete or not a BERT checkpoint")
            if incoming is None:
                fresh[name] = ""
            elif incoming.shape != current.shape:
                raise PrefineError(
                    f"checkpoint weight {name} has shape {list(incoming.shape)} but the model expects {list(current.shape)}; "
                    "the config.json does not match the weights (vocabulary or sizes differ)"
                )
            continue
        part = _head_of(name)
        if incoming is not None and incoming.shape != current.shape:
            # A classifier trained for another label set: start it afresh, say so (first mismatch).
            if not fresh.get(part):
                fresh[part] = f" (the checkpoint's {name} has shape {list(incoming.shape)}, the model needs {list(current.shape)})"
        elif incoming is None and part not in fresh:
            present = [other for other in ours if _head_of(other) == part and other in mapped]
            if present:
                # Half a head cannot work: the checkpoint is damaged, not merely head-less.
                raise PrefineError(f"the checkpoint has {present[0]} but lacks {name} of the same head; it is incomplete")
            fresh[part] = ""

    new_state = dict(ours)
    for name, current in ours.items():
        if name in mapped and name not in fresh and _head_of(name) not in fresh:
            new_state[name] = mapped[name].to(dtype=current.dtype)
            report.loaded.append(name)
    report.newly_initialized.extend(HEAD_DESCRIPTIONS.get(part, part) + why for part, why in fresh.items())
    loaded = set(report.loaded)
    report.ignored.extend(sorted(name for name in mapped if name not in loaded))
    model.load_state_dict(new_state, strict=True)
    return report


def _special_token(settings: dict, key: str, default: str) -> str:
    value = settings.get(key, default)
    # special_tokens_map.json may store {"content": "[CLS]", "lstrip": false, ...}
    return value.get("content", default) if isinstance(value, dict) else str(value)


def _read_vocab_txt(path: Path) -> dict[str, int]:
    # As in transformers' load_vocab: only "\n" ends a token, a later duplicate wins the id.
    vocab: dict[str, int] = {}
    with open(path, encoding="utf-8", newline="\n") as handle:
        for token_id, line in enumerate(handle):
            vocab[line.removesuffix("\n")] = token_id
    if not vocab:
        raise PrefineError(f"{path} is empty; it must list one token per line")
    return vocab


def bert_tokenizer_from_vocab(directory: Path) -> Tokenizer:
    """transformers' BertTokenizer(Fast) rebuilt from vocab.txt and tokenizer_config.json.

    Unlike prefine's own tokenizers, this keeps BERT's accent stripping (NFD, drop every mark)
    whenever the checkpoint asks for it: the checkpoint's vocabulary was built on text
    normalized that way, so the same ids as transformers matter more than Hangul-friendliness.
    """
    settings = {
        **read_json_object(directory / "special_tokens_map.json", fix="fix or delete it", missing_ok=True),
        **read_json_object(directory / "tokenizer_config.json", fix="fix or delete it", missing_ok=True),
    }
    lowercase = bool(settings.get("do_lower_case", True))
    strip_accents = settings.get("strip_accents")
    unk, cls, sep, pad, mask = (
        _special_token(settings, key, default)
        for key, default in (
            ("unk_token", "[UNK]"),
            ("cls_token", "[CLS]"),
            ("sep_token", "[SEP]"),
            ("pad_token", "[PAD]"),
            ("mask_token", "[MASK]"),
        )
    )
    vocab = _read_vocab_txt(directory / "vocab.txt")
    for token in (unk, cls, sep):
        if token not in vocab:
            raise PrefineError(f"{directory / 'vocab.txt'} has no {token} token; add it as a line of its own")
    tokenizer = Tokenizer(models.WordPiece(vocab, unk_token=unk, continuing_subword_prefix="##", max_input_chars_per_word=100))
    tokenizer.normalizer = normalizers.BertNormalizer(
        clean_text=True,
        handle_chinese_chars=bool(settings.get("tokenize_chinese_chars", True)),
        strip_accents=strip_accents,  # None: strip when lowercasing, BERT's rule
        lowercase=lowercase,
    )
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece(prefix="##")
    tokenizer.add_special_tokens([token for token in (pad, unk, cls, sep, mask) if token in vocab])
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{cls}:0 $A:0 {sep}:0",
        pair=f"{cls}:0 $A:0 {sep}:0 $B:1 {sep}:1",
        special_tokens=[(cls, vocab[cls]), (sep, vocab[sep])],
    )
    return tokenizer


def load_hf_tokenizer(directory: Path) -> Tokenizer:
    """The tokenizer of a Hugging Face BERT folder: tokenizer.json as saved, else rebuilt from vocab.txt.

    Padding and truncation settings stored in tokenizer.json (sentence-transformers saves a
    max length of 128) are switched off: prefine's recipes decide lengths themselves.
    """
    directory = Path(directory)
    if (directory / "tokenizer.json").is_file():
        try:
            tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        except Exception as error:  # the Rust side raises a bare Exception for malformed files
            raise PrefineError(f"{directory / 'tokenizer.json'} cannot be read ({error}); re-download the model") from None
        tokenizer.no_padding()
        tokenizer.no_truncation()
        return tokenizer
    if (directory / "vocab.txt").is_file():
        return bert_tokenizer_from_vocab(directory)
    raise PrefineError(f"{directory} holds neither tokenizer.json nor vocab.txt; a Hugging Face BERT folder needs its tokenizer")


@dataclass
class ImportedCheckpoint:
    """A Hugging Face BERT checkpoint read into prefine's types."""

    config: BertConfig
    state_dict: dict[str, torch.Tensor]  # Hugging Face names; `load_into` maps them onto a model
    tokenizer: Tokenizer
    source: str  # the folder or Hub name it came from
    lowercase: bool
    electra: ElectraWeights | None = None  # an ELECTRA checkpoint's whole state; state_dict is its discriminator as BERT


# A Hub repo id: "name" or "owner/name", letters, digits, "-", "_", ".".
_HUB_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def download_from_hub(repo_id: str) -> Path:
    """Download the files of a BERT model from the Hugging Face Hub (cached) and return the folder."""
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise PrefineError(
            f"{repo_id} is not a local folder, and downloading it from the Hugging Face Hub needs the hub extra: pip install 'prefine[hub]'"
        ) from None
    base = ["config.json", *TOKENIZER_FILES]
    try:
        # safetensors first; the .bin (often a second copy of the same weights) only if there is none.
        folder = Path(snapshot_download(repo_id, allow_patterns=[*base, SAFETENSORS_FILE, SAFETENSORS_INDEX, "model-*.safetensors"]))
        if not any((folder / name).is_file() for name in (SAFETENSORS_FILE, SAFETENSORS_INDEX)):
            folder = Path(snapshot_download(repo_id, allow_patterns=[*base, PYTORCH_FILE, PYTORCH_INDEX, "pytorch_model-*.bin"]))
    except Exception as error:  # offline, unknown repo, gated repo, HTTP errors: all end the same way
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise PrefineError(f"could not download {repo_id} from the Hugging Face Hub ({reason}); pass a local folder") from None
    return folder


def import_hf_checkpoint(name_or_path: str) -> ImportedCheckpoint:
    """Read a Hugging Face BERT folder, or download a Hub model by name, into prefine's types."""
    path = Path(name_or_path).expanduser()
    if path.exists():
        if not path.is_dir():
            raise PrefineError(f"{name_or_path} is a file; pass the model's folder (config.json, model.safetensors, vocab.txt)")
        if (path / RUN_FILE).exists():
            raise PrefineError(
                f"{name_or_path} is a prefine run, not a Hugging Face folder; pass it to --init directly or export it with `prefine export`"
            )
        if not is_hf_model_dir(path):
            raise PrefineError(
                f"{name_or_path} is not a Hugging Face model folder (needs config.json and model.safetensors or pytorch_model.bin)"
            )
        folder = path
    elif _HUB_REPO_ID.match(name_or_path):
        folder = download_from_hub(name_or_path)
    else:
        raise PrefineError(f"{name_or_path} not found: pass an existing folder or a Hugging Face Hub name such as bert-base-uncased")

    electra = None
    if is_electra_config_json(read_json_object(folder / CONFIG_FILE, fix="re-download the model")):
        config, state_dict, electra = import_hf_electra(folder)
    else:
        config = load_hf_config(folder)
        state_dict = load_hf_state_dict(folder)
    tokenizer = load_hf_tokenizer(folder)
    if tokenizer.get_vocab_size() > config.vocab_size:
        raise PrefineError(
            f"{name_or_path}: the tokenizer has {tokenizer.get_vocab_size()} tokens but the model embeds only {config.vocab_size}; "
            "the folder mixes files of different models"
        )
    lowercase, _ = normalizer_settings(tokenizer)
    return ImportedCheckpoint(config, state_dict, tokenizer, str(name_or_path), lowercase, electra)
