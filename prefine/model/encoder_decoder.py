"""A BERT encoder-decoder for text generation, warm-started from a BERT encoder, with cached decoding.

The architecture is Rothe, Narayan and Severyn's (TACL 2020, "Leveraging Pre-trained
Checkpoints for Sequence Generation Tasks"): the encoder is a BERT; the decoder is a second copy
of the same blocks run causally, each block given a cross-attention sub-layer over the encoder's
output (new weights, BERT's initialization), and an LM head whose projection is the decoder's
word-embedding table. Attribute names follow transformers'
`EncoderDecoderModel(encoder=BertModel, decoder=BertLMHeadModel)` exactly
(`encoder.encoder.layer.0.attention.self.query.weight`,
`decoder.bert.encoder.layer.0.crossattention.output.dense.weight`,
`decoder.cls.predictions.transform.dense.weight`), so an export is a copy of the state dict.

Two ways through the decoder:

- `forward` (training and the reference for tests): the whole target at once, causal
  self-attention through SDPA's `is_causal`, the vocabulary projection only at positions that
  have a label (most of a padded target batch has none);
- `start_decoding` + `decode_step` (generation): one new token per row per step. Each block's
  self-attention keys and values are written into a preallocated cache, so a step projects only
  the new token; the cross-attention keys and values of the encoder output are computed once per
  input (once per input, whatever the number of beams). `DecoderCache.keep_rows` drops finished
  rows or reorders beams.

With `share_encoder_decoder` the decoder uses the encoder's embeddings, self-attention and
feed-forward modules (Rothe's BERTShare); only cross-attention and the LM head transform are the
decoder's own. The shared tensors are stored once, under the encoder's names.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from prefine.labels import IGNORE_LABEL
from prefine.model.bert import (
    BertAttention,
    BertEmbeddings,
    BertIntermediate,
    BertModel,
    BertOutput,
    BertSelfOutput,
    attention_bias_from_mask,
    init_bert_weights,
)
from prefine.model.config import BertConfig
from prefine.model.heads import BertLMPredictionHead


class BertDecoderLayer(nn.Module):
    """A BERT block with a cross-attention sub-layer between self-attention and the feed-forward."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.attention = BertAttention(config)
        self.crossattention = BertAttention(config)
        self.intermediate = BertIntermediate(config)
        self.output = BertOutput(config)


class BertDecoderStack(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.layer = nn.ModuleList(BertDecoderLayer(config) for _ in range(config.num_hidden_layers))

    @property
    def blocks(self) -> Sequence[BertDecoderLayer]:
        # nn.ModuleList hands a type checker plain Modules; every item here is a BertDecoderLayer.
        return cast("Sequence[BertDecoderLayer]", self.layer)


class BertDecoderModel(nn.Module):
    """transformers' BertModel as a decoder (no pooler): embeddings and the blocks."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.embeddings = BertEmbeddings(config)
        self.encoder = BertDecoderStack(config)


class BertOnlyMLMHead(nn.Module):
    def __init__(self, config: BertConfig, word_embeddings: nn.Embedding):
        super().__init__()
        # Always tied: the decoder reads and writes one vocabulary table, as transformers' EncoderDecoderModel does.
        self.predictions = BertLMPredictionHead(config, word_embeddings, tied=True)


class BertLMHeadDecoder(nn.Module):
    """transformers' BertLMHeadModel: the decoder body and an LM head tied to its word embeddings."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.bert = BertDecoderModel(config)
        self.cls = BertOnlyMLMHead(config, self.bert.embeddings.word_embeddings)


@dataclass
class Seq2SeqOutput:
    loss: torch.Tensor | None
    logits: torch.Tensor  # [num_labelled, V] when labels are given, else [B, T, V]
    num_target_tokens: int = 0
    num_correct: torch.Tensor | None = None  # labelled positions whose argmax is the label


def _split_heads(projected: torch.Tensor, parts: int, num_heads: int) -> list[torch.Tensor]:
    """[B, T, parts * H] -> `parts` tensors of [B, heads, T, head_dim]."""
    batch, length, width = projected.shape
    return list(projected.view(batch, length, parts, num_heads, width // parts // num_heads).permute(2, 0, 3, 1, 4).unbind(0))


def _merge_heads(context: torch.Tensor) -> torch.Tensor:
    batch, _, length, _ = context.shape
    return context.transpose(1, 2).reshape(batch, length, -1)


def _fused(*layers: nn.Linear) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.cat([layer.weight for layer in layers]), torch.cat([layer.bias for layer in layers])


def _embed(embeddings: BertEmbeddings, input_ids: torch.Tensor, first_position: int) -> torch.Tensor:
    """Decoder embeddings of tokens at positions first_position, first_position + 1, ... (segment 0)."""
    positions = torch.arange(first_position, first_position + input_ids.shape[1], device=input_ids.device)
    embedded = (
        embeddings.word_embeddings(input_ids) + embeddings.position_embeddings(positions) + embeddings.token_type_embeddings.weight[0]
    )
    return embeddings.dropout(embeddings.LayerNorm(embedded))


def _attend_few_queries(query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """Attention for the one new position of a decoding step (a few positions: the beams of an input).

    On CUDA this is SDPA. On CPU, SDPA's fused kernel is built for long queries: for one query
    row against a few hundred keys, two matmuls and a softmax take about half its time (measured
    with torch 2.13), and a decoding step runs this twice per block.
    """
    if query.device.type != "cpu":
        return F.scaled_dot_product_attention(query, keys, values, attn_mask=bias)
    # keys @ query^T, not query @ keys^T: the transposed view of the (large) keys would be copied
    # whole by every matmul, the transposed (tiny) query costs nothing.
    scores = torch.matmul(keys, query.transpose(-1, -2)).transpose(-1, -2) * query.shape[-1] ** -0.5
    if bias is not None:
        scores = scores + bias
    return torch.matmul(scores.softmax(-1), values)


# Rows of a decoding step for which (W @ x^T)^T beats x @ W^T on CPU. With MKL, a GEMM of 2-8
# rows against a layer's [out, in] weight ran ~1.5x faster in this orientation when the step's
# weights no longer fit in cache (a mini decoder, 4 beams: 2.4 against 3.7 ms of linear layers
# per step); one row is a GEMV either way, and from ~16 rows the usual orientation wins again.
FEW_ROWS = range(2, 9)


def _few_rows(x: torch.Tensor) -> bool:
    return x.device.type == "cpu" and x.shape[0] in FEW_ROWS


def _step_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """F.linear for the [rows, in] activations of one decoding step (see FEW_ROWS)."""
    if _few_rows(x):
        return torch.addmm(bias[:, None], weight, x.t()).t().contiguous()
    return F.linear(x, weight, bias)


def _add_and_norm(sublayer: BertSelfOutput | BertOutput, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
    """A BERT output sub-layer (dense, residual, LayerNorm) without dropout, through `_step_linear`."""
    return sublayer.LayerNorm(_step_linear(x, sublayer.dense.weight, sublayer.dense.bias) + residual)


@dataclass
class DecodingWeights:
    """The decoder's weights rearranged for one-token steps, derived once and reused across calls.

    Rebuilding them per call cost a batch-1 generation of 16 tokens about a tenth of its time
    (the vocabulary transpose alone copies the whole table). They are kept only while the model is
    in eval mode: `train()`, `load_state_dict` and `.to()` drop them. Within eval mode, `sources`
    (each parameter with its storage and version counter) catch in-place edits and replaced
    tensors; PyTorch's fused AdamW does not bump version counters, which is why training mode,
    where optimizer steps happen, never keeps them. The price is memory held between calls: the
    decoder's attention projections and the vocabulary table once more (~15 MB for a mini with a
    10k vocabulary, ~235 MB for a base with 30k).
    """

    sources: list[tuple[torch.Tensor, int, int]]  # (parameter, data_ptr, _version)
    self_qkv: list[tuple[torch.Tensor, torch.Tensor]]  # per block: Q/K/V weights and biases concatenated
    cross_kv: list[tuple[torch.Tensor, torch.Tensor]]  # per block: cross-attention K/V concatenated
    # The LM head's projection as a [hidden, vocab] matrix: a few rows times the vocabulary runs
    # several times faster in this layout than through F.linear's [vocab, hidden] (memory-bound).
    vocabulary: tuple[torch.Tensor, torch.Tensor]
    vocabulary_table: torch.Tensor  # the [vocab, hidden] table itself, for steps of a few rows (see FEW_ROWS)

    def derived_from(self, parameters: list[torch.Tensor]) -> bool:
        return len(parameters) == len(self.sources) and all(
            parameter is source and parameter.data_ptr() == pointer and parameter._version == version
            for parameter, (source, pointer, version) in zip(parameters, self.sources)
        )


@dataclass
class DecoderCache:
    """Per-block keys and values for the rows still being decoded.

    Rows come in groups of `rows_per_input` (the beams of one input, or 1): the self-attention
    cache has one row per decoded sequence, while the cross-attention keys and values, identical
    for every beam of an input, are stored once per input. Reordering beams then moves only the
    self-attention cache, never the encoder side (transformers copies both at every step).
    """

    self_keys: list[torch.Tensor]  # per block [R, heads, capacity, head_dim]; filled up to `length`
    self_values: list[torch.Tensor]
    cross_keys: list[torch.Tensor]  # per block [R / rows_per_input, heads, S, head_dim]: the encoder output, projected once
    cross_values: list[torch.Tensor]
    cross_bias: torch.Tensor | None  # [R / rows_per_input, 1, 1, S] hiding the encoder's padding; None when there is none
    capacity: int
    rows_per_input: int = 1
    length: int = 0
    weights: DecodingWeights | None = None

    @property
    def rows(self) -> int:
        return self.cross_keys[0].shape[0] * self.rows_per_input

    def keep_rows(self, rows: torch.Tensor, inputs: torch.Tensor | None = None) -> None:
        """Keep (and reorder to) `rows` of the self-attention cache: finished rows go, beams follow their parents.

        With groups of beams, `inputs` names the inputs still decoding (None: all of them, in order);
        with one row per input, the rows are the inputs.
        """
        for tensors in (self.self_keys, self.self_values):
            for index, tensor in enumerate(tensors):
                tensors[index] = tensor.index_select(0, rows)
        if self.rows_per_input == 1:
            inputs = rows
        if inputs is None:
            return
        for tensors in (self.cross_keys, self.cross_values):
            for index, tensor in enumerate(tensors):
                tensors[index] = tensor.index_select(0, inputs)
        if self.cross_bias is not None:
            self.cross_bias = self.cross_bias.index_select(0, inputs)


class BertEncoderDecoder(nn.Module):
    """Encoder-decoder with transformers' EncoderDecoderModel names; `.bert` is the encoder (the task convention)."""

    def __init__(self, config: BertConfig, share_encoder_decoder: bool = False):
        super().__init__()
        self.config = config
        self.share_encoder_decoder = share_encoder_decoder
        self.encoder = BertModel(config, add_pooling_layer=True)
        self.decoder = BertLMHeadDecoder(config)
        init_bert_weights(self, config.initializer_range)
        # Generation never reads the pooler; it stays because transformers' encoder (a BertModel) has
        # one. Frozen, so the optimizer skips it and DistributedDataParallel waits for no gradient of it.
        self.encoder.required_pooler().requires_grad_(False)
        if share_encoder_decoder:
            self._share_encoder_weights()

    @property
    def bert(self) -> BertModel:
        return self.encoder

    # -----------------------------------------------------------------------------------------
    # Shared weights (BERTShare)

    def _share_encoder_weights(self) -> None:
        decoder = self.decoder.bert
        decoder.embeddings = self.encoder.embeddings
        self.decoder.cls.predictions._word_embeddings = [self.encoder.embeddings.word_embeddings]
        for ours, theirs in zip(decoder.encoder.blocks, self.encoder.encoder.blocks):
            ours.attention, ours.intermediate, ours.output = theirs.attention, theirs.intermediate, theirs.output

    def shared_weight_names(self) -> dict[str, str]:
        """Decoder name -> the encoder name holding the same tensor (empty without sharing)."""
        if not self.share_encoder_decoder:
            return {}
        names = {}
        for name, _ in self.encoder.named_parameters():
            if name.startswith("embeddings."):
                names["decoder.bert." + name] = "encoder." + name
            elif name.startswith("encoder.layer.") and ".crossattention." not in name:
                names["decoder.bert." + name] = "encoder." + name
        return names

    def state_dict(self, *args, **kwargs):
        state = super().state_dict(*args, **kwargs)
        prefix = kwargs.get("prefix", args[1] if len(args) > 1 else "")
        for name in self.shared_weight_names():
            state.pop(prefix + name, None)  # stored once, under the encoder's name (safetensors refuses aliases)
        return state

    def train(self, mode: bool = True):
        self.__dict__.pop("_decoding_weights", None)
        return super().train(mode)

    def _apply(self, fn, *args, **kwargs):
        self.__dict__.pop("_decoding_weights", None)
        return super()._apply(fn, *args, **kwargs)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        self.__dict__.pop("_decoding_weights", None)
        state = dict(state_dict)
        for decoder_name, encoder_name in self.shared_weight_names().items():
            if decoder_name not in state and encoder_name in state:
                state[decoder_name] = state[encoder_name]
        return super().load_state_dict(state, strict=strict, assign=assign)

    # -----------------------------------------------------------------------------------------
    # Training / full-sequence path

    def encode(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None, token_type_ids: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Encoder output [B, S, H] (zeros at padding)."""
        return self.encoder(input_ids, token_type_ids, attention_mask)

    def _cross_key_values(self, memory: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        keys, values = [], []
        for block in self.decoder.bert.encoder.blocks:
            attention = block.crossattention.self
            key, value = _split_heads(F.linear(memory, *_fused(attention.key, attention.value)), 2, self.config.num_attention_heads)
            keys.append(key)
            values.append(value)
        return keys, values

    def decoder_hidden_states(
        self, decoder_input_ids: torch.Tensor, memory: torch.Tensor, memory_mask: torch.Tensor | None
    ) -> torch.Tensor:
        """Decoder output [B, T, H] for whole targets (teacher forcing).

        Targets are right-padded, so causal attention alone already keeps every real position
        from seeing padding (padding only ever comes after it); no target mask is needed, which
        lets SDPA take its causal fast path.
        """
        heads = self.config.num_attention_heads
        dropout = self.config.attention_probs_dropout_prob if self.training else 0.0
        cross_keys, cross_values = self._cross_key_values(memory)
        cross_bias = attention_bias_from_mask(memory_mask, memory.dtype if memory.is_floating_point() else torch.float32)
        hidden = _embed(self.decoder.bert.embeddings, decoder_input_ids, 0)
        for index, block in enumerate(self.decoder.bert.encoder.blocks):
            attention = block.attention.self
            query, key, value = _split_heads(F.linear(hidden, *_fused(attention.query, attention.key, attention.value)), 3, heads)
            context = F.scaled_dot_product_attention(query, key, value, dropout_p=dropout, is_causal=True)
            hidden = block.attention.output(_merge_heads(context), hidden)
            query = _split_heads(block.crossattention.self.query(hidden), 1, heads)[0]
            bias = None if cross_bias is None else cross_bias.to(query.dtype)
            context = F.scaled_dot_product_attention(query, cross_keys[index], cross_values[index], attn_mask=bias, dropout_p=dropout)
            hidden = block.crossattention.output(_merge_heads(context), hidden)
            hidden = block.output(block.intermediate(hidden), hidden)
        return hidden

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None,
        decoder_input_ids: torch.Tensor,
        labels: torch.Tensor | None = None,
        label_smoothing: float = 0.0,
    ) -> Seq2SeqOutput:
        """Teacher-forced decoding of `decoder_input_ids` ([CLS] t1 .. tn); `labels` (t1 .. tn [SEP], -100 at padding).

        With labels, the vocabulary projection and the loss cover only labelled positions.
        """
        memory = self.encode(input_ids, attention_mask)
        hidden = self.decoder_hidden_states(decoder_input_ids, memory, attention_mask)
        head = self.decoder.cls.predictions
        if labels is None:
            return Seq2SeqOutput(None, head(hidden))
        labelled = labels != IGNORE_LABEL
        targets = labels[labelled]
        logits = head(hidden[labelled])
        loss = F.cross_entropy(logits.float(), targets, label_smoothing=label_smoothing, reduction="sum") / max(targets.numel(), 1)
        with torch.no_grad():
            correct = (logits.argmax(-1) == targets).sum()
        return Seq2SeqOutput(loss, logits, targets.numel(), correct)

    # -----------------------------------------------------------------------------------------
    # Incremental path (generation)

    def _decoding_weight_sources(self) -> list[torch.Tensor]:
        sources = []
        for block in self.decoder.bert.encoder.blocks:
            for layer in (
                block.attention.self.query,
                block.attention.self.key,
                block.attention.self.value,
                block.crossattention.self.key,
                block.crossattention.self.value,
            ):
                sources += [layer.weight, layer.bias]
        predictions = self.decoder.cls.predictions
        return sources + [predictions._word_embeddings[0].weight, predictions.bias]

    def decoding_weights(self) -> DecodingWeights:
        """The derived decoding weights (see `DecodingWeights`), rebuilt only when a source parameter changed."""
        sources = self._decoding_weight_sources()
        cached = self.__dict__.get("_decoding_weights")
        if cached is not None and cached.derived_from(sources):
            return cached
        # Ordinary tensors even when called under inference_mode, so a later call with autograd on can read them.
        with torch.inference_mode(False), torch.no_grad():
            blocks = self.decoder.bert.encoder.blocks
            predictions = self.decoder.cls.predictions
            weights = DecodingWeights(
                sources=[(parameter, parameter.data_ptr(), parameter._version) for parameter in sources],
                self_qkv=[_fused(block.attention.self.query, block.attention.self.key, block.attention.self.value) for block in blocks],
                cross_kv=[_fused(block.crossattention.self.key, block.crossattention.self.value) for block in blocks],
                vocabulary=(predictions._word_embeddings[0].weight.t().contiguous(), predictions.bias.detach().clone()),
                vocabulary_table=predictions._word_embeddings[0].weight.detach(),
            )
        if not self.training:
            self.__dict__["_decoding_weights"] = weights  # a plain attribute: not a parameter, not in the state dict
        return weights

    def start_decoding(
        self, memory: torch.Tensor, memory_mask: torch.Tensor | None, max_new_tokens: int, rows_per_input: int = 1
    ) -> DecoderCache:
        """An empty cache for decoding up to `max_new_tokens` tokens after the start token, given the encoder output.

        `rows_per_input` sequences are decoded per input (the beams of a beam search): rows
        i * rows_per_input ... (i + 1) * rows_per_input - 1 read the memory of input i.

        The cross-attention keys and values are projected at real source tokens only (a batch of
        documents is often half padding) and written straight into the [inputs, heads, S,
        head_dim] layout the steps read; padded slots stay zero and are hidden by the bias.
        """
        weights = self.decoding_weights()
        batch, length, hidden = memory.shape
        heads, head_dim = self.config.num_attention_heads, self.config.head_dim
        if memory_mask is None:
            real = torch.arange(batch * length, device=memory.device)
        else:
            real = memory_mask.reshape(-1).nonzero().squeeze(1)
        source_rows, source_positions = real // length, real % length
        real_memory = memory.reshape(-1, hidden).index_select(0, real)
        cross_keys, cross_values = [], []
        for weight, bias in weights.cross_kv:
            projected = F.linear(real_memory, weight, bias).view(-1, 2, heads, head_dim)
            key, value = (projected.new_zeros(batch, heads, length, head_dim) for _ in range(2))
            # Through a [inputs, S, heads, head_dim] view: one (input, position) index per real token.
            key.transpose(1, 2)[source_rows, source_positions] = projected[:, 0]
            value.transpose(1, 2)[source_rows, source_positions] = projected[:, 1]
            cross_keys.append(key)
            cross_values.append(value)
        cross_bias = attention_bias_from_mask(memory_mask, cross_keys[0].dtype)
        return DecoderCache(
            [], [], cross_keys, cross_values, cross_bias, capacity=max_new_tokens + 1, rows_per_input=rows_per_input, weights=weights
        )

    def decode_step(self, cache: DecoderCache, input_ids: torch.Tensor) -> torch.Tensor:
        """Logits [R, V] of the next token after `input_ids` [R] (one token per row), extending the cache.

        Generation is inference: the step runs without dropout, whatever the module's mode.
        """
        position = cache.length
        if position >= cache.capacity:
            raise ValueError(f"the decoder cache holds {cache.capacity} positions; start_decoding with a larger max_new_tokens")
        weights = cache.weights
        if weights is None:
            raise ValueError("decode_step needs a cache from start_decoding, which carries the decoding weights")
        heads, head_dim, group = self.config.num_attention_heads, self.config.head_dim, cache.rows_per_input
        rows = input_ids.shape[0]
        hidden = _embed(self.decoder.bert.embeddings, input_ids[:, None], position)[:, 0]  # [R, H]
        for index, block in enumerate(self.decoder.bert.encoder.blocks):
            query, key, value = _step_linear(hidden, *weights.self_qkv[index]).view(rows, 3, heads, head_dim).unbind(1)
            if len(cache.self_keys) <= index:
                shape = (rows, heads, cache.capacity, head_dim)
                cache.self_keys.append(key.new_zeros(shape))
                cache.self_values.append(value.new_zeros(shape))
            keys, values = cache.self_keys[index], cache.self_values[index]
            keys[:, :, position] = key
            values[:, :, position] = value
            # The newest token may see every earlier one: no mask at all.
            context = _attend_few_queries(query[:, :, None], keys[:, :, : position + 1], values[:, :, : position + 1], None)
            hidden = _add_and_norm(block.attention.output, context.reshape(rows, -1), hidden)
            # The beams of one input are that input's queries: [inputs, heads, beams, head_dim] against its keys.
            cross = block.crossattention.self.query
            query = _step_linear(hidden, cross.weight, cross.bias).view(-1, group, heads, head_dim).transpose(1, 2)
            bias = None if cache.cross_bias is None else cache.cross_bias.to(query.dtype)
            context = _attend_few_queries(query, cache.cross_keys[index], cache.cross_values[index], bias)
            hidden = _add_and_norm(block.crossattention.output, context.transpose(1, 2).reshape(rows, -1), hidden)
            intermediate = block.intermediate
            hidden = _add_and_norm(
                block.output, intermediate.act(_step_linear(hidden, intermediate.dense.weight, intermediate.dense.bias)), hidden
            )
        cache.length += 1
        transform = self.decoder.cls.predictions.transform
        transformed = transform.LayerNorm(transform.transform_act_fn(_step_linear(hidden, transform.dense.weight, transform.dense.bias)))
        if _few_rows(transformed):
            return _step_linear(transformed, weights.vocabulary_table, weights.vocabulary[1])
        weight, vocabulary_bias = weights.vocabulary
        return torch.addmm(vocabulary_bias, transformed, weight)


__all__ = ["BertEncoderDecoder", "DecoderCache", "DecodingWeights", "Seq2SeqOutput"]
