"""BERT encoder in plain PyTorch, with Hugging Face's parameter names and shapes.

Module attribute names mirror `transformers.BertModel` (`embeddings.word_embeddings`,
`encoder.layer.3.attention.self.query`, ...), so a Hugging Face state dict loads by name with
at most a prefix rename, and ours exports the same way. A config with a narrower `embedding_size`
(an imported ELECTRA-Small) adds transformers ELECTRA's `embeddings_project` between the
embeddings and the blocks. Attention runs through
`torch.nn.functional.scaled_dot_product_attention`, which picks a fused kernel on CUDA and
skips the mask entirely when a batch has no padding. `causal=True` on the forward turns the
same blocks into a decoder for causal language modelling. `apply_mimetic_init` is an optional
start for a new pre-training run (`prefine pretrain --mimetic-init`): heads whose query-key
product is near the identity, and sinusoidal position rows, in place of BERT's random ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from prefine.model.config import BertConfig


def activation(name: str):
    if name == "gelu":
        return F.gelu
    if name == "relu":
        return F.relu
    # gelu_new, gelu_pytorch_tanh and gelu_fast are all the tanh approximation of GELU.
    return lambda x: F.gelu(x, approximate="tanh")


class BertEmbeddings(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        width = config.embedding_width
        self.word_embeddings = nn.Embedding(config.vocab_size, width, padding_idx=config.pad_token_id)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, width)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, width)
        self.LayerNorm = nn.LayerNorm(width, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        embedded = self.word_embeddings(input_ids) + self.position_embeddings(positions) + self.token_type_embeddings(token_type_ids)
        return self.dropout(self.LayerNorm(embedded))


class BertSelfAttention(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.num_heads = config.num_attention_heads
        self.head_dim = config.head_dim
        self.dropout_prob = config.attention_probs_dropout_prob
        self.query = nn.Linear(config.hidden_size, config.hidden_size)
        self.key = nn.Linear(config.hidden_size, config.hidden_size)
        self.value = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, hidden: torch.Tensor, layout: AttentionLayout) -> torch.Tensor:
        # One matmul for Q, K and V instead of three: the weights stay separate (Hugging Face
        # names) and are concatenated per call, which costs far less than the saved launches.
        weight = torch.cat([self.query.weight, self.key.weight, self.value.weight])
        bias = torch.cat([self.query.bias, self.key.bias, self.value.bias])
        contexts = []
        for qkv, attention_bias in layout.grids(F.linear(hidden, weight, bias)):
            batch, length, _ = qkv.shape
            query, key, value = qkv.view(batch, length, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
            context = F.scaled_dot_product_attention(
                query,
                key,
                value,
                attn_mask=attention_bias,
                dropout_p=self.dropout_prob if self.training else 0.0,
                is_causal=layout.causal and attention_bias is None,
            )
            contexts.append(context.transpose(1, 2).reshape(batch, length, -1))
        return layout.from_grids(contexts)

    def forward_first_token(self, hidden: torch.Tensor, first: torch.Tensor, layout: AttentionLayout) -> torch.Tensor:
        """Attention output [B, H] of the first token ([CLS]) only: its query against every key."""
        key_value = F.linear(hidden, torch.cat([self.key.weight, self.value.weight]), torch.cat([self.key.bias, self.value.bias]))
        query = self.query(first)
        contexts = []
        for rows, (grid, attention_bias) in zip(layout.group_rows(), layout.grids(key_value)):
            batch, length, _ = grid.shape
            key, value = grid.view(batch, length, 2, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
            group_query = (query if rows is None else query.index_select(0, rows)).view(batch, self.num_heads, 1, self.head_dim)
            context = F.scaled_dot_product_attention(
                group_query, key, value, attn_mask=attention_bias, dropout_p=self.dropout_prob if self.training else 0.0
            )
            contexts.append(context.reshape(batch, -1))
        return layout.rows_from_groups(contexts)


class BertSelfOutput(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dropout(self.dense(hidden)) + residual)


class BertAttention(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.self = BertSelfAttention(config)
        self.output = BertSelfOutput(config)

    def forward(self, hidden: torch.Tensor, layout: AttentionLayout) -> torch.Tensor:
        return self.output(self.self(hidden, layout), hidden)


class BertIntermediate(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.intermediate_size)
        self.act = activation(config.hidden_act)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.act(self.dense(hidden))


class BertOutput(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.dense = nn.Linear(config.intermediate_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dropout(self.dense(hidden)) + residual)


class BertLayer(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.attention = BertAttention(config)
        self.intermediate = BertIntermediate(config)
        self.output = BertOutput(config)

    def forward(self, hidden: torch.Tensor, layout: AttentionLayout) -> torch.Tensor:
        attended = self.attention(hidden, layout)
        return self.output(self.intermediate(attended), attended)

    def forward_first_token(self, hidden: torch.Tensor, layout: AttentionLayout) -> torch.Tensor:
        """This block's output [B, H] at the first position only.

        A classifier reads nothing but [CLS] from the last block, so that block needs keys and
        values for every token but queries, attention output and feed-forward for one token per
        sequence: most of the block's work is skipped, with identical results.
        """
        first = hidden[layout.first_token_rows()] if layout.real_positions is not None else hidden[:, 0]
        attended = self.attention.output(self.attention.self.forward_first_token(hidden, first, layout), first)
        return self.output(self.intermediate(attended), attended)


class BertEncoder(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.layer = nn.ModuleList(BertLayer(config) for _ in range(config.num_hidden_layers))

    @property
    def blocks(self) -> Sequence[BertLayer]:
        # nn.ModuleList hands a type checker plain Modules; every item here is a BertLayer.
        return cast("Sequence[BertLayer]", self.layer)

    def forward(self, hidden: torch.Tensor, layout: AttentionLayout, first_token_only: bool = False) -> torch.Tensor:
        blocks = self.blocks
        last = len(blocks) - 1 if first_token_only else len(blocks)
        for block in blocks[:last]:
            hidden = block(hidden, layout)
        if first_token_only:
            return blocks[-1].forward_first_token(hidden, layout)
        return hidden


class BertPooler(nn.Module):
    """tanh(dense([CLS])): the sentence vector NSP and classification heads read."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, sequence_output: torch.Tensor) -> torch.Tensor:
        return self.pool(sequence_output[:, 0])

    def pool(self, first_token: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.dense(first_token))


# The fixed cost of one more attention call (a few small kernels and index operations, forward
# and backward), in units of one row times one squared column: a group is split off only when
# its smaller grid saves more than this.
ATTENTION_CALL_COST = 2 * 64 * 64


@dataclass
class AttentionGroup:
    """Rows of a batch that attend on one grid of `length` columns (their longest)."""

    rows: torch.Tensor  # batch rows in the group
    length: int
    token_index: torch.Tensor  # the group's real tokens in the packed [N, D] tensor, in grid order
    grid_index: torch.Tensor  # their places in the flat [len(rows) * length] grid
    bias: torch.Tensor | None  # additive [len(rows), 1, 1, length] mask; None when the group has no padding


@dataclass
class AttentionLayout:
    """How a batch's tokens are laid out between the blocks, and what attention may see.

    Padding costs as much as real text in every linear layer, and BERT's instances are often
    half padding (documents shorter than the target length, short_seq_prob, NSP truncation).
    So when a batch is padded, the blocks work on the real tokens only, packed as [N, H]; only
    attention, which needs a [rows, columns] grid, scatters them back for the duration of the call
    (the "unpadding" of MosaicBERT and ModernBERT, without a variable-length kernel).

    Attention's cost grows with the square of the grid's width, so a padded batch whose lengths
    differ a lot (at sequence length 512, a few long instances among many short ones) is split
    into groups of rows of similar length, each attending on a grid as wide as its own longest
    row. Results are identical; only the padding work goes.
    """

    bias: torch.Tensor | None  # additive [B, 1, 1, L] mask; None when nothing is padded
    causal: bool = False
    real_positions: torch.Tensor | None = None  # flat indices of real tokens in [B * L]; None: not unpadded
    batch: int = 0
    length: int = 0
    groups: list[AttentionGroup] | None = None  # None: the whole batch attends on one grid
    ungroup_index: torch.Tensor | None = None  # packed order from the groups' tokens laid end to end
    unsort_rows: torch.Tensor | None = None  # batch row order from the groups' rows laid end to end

    @classmethod
    def from_mask(
        cls, attention_mask: torch.Tensor | None, shape: tuple[int, ...], dtype: torch.dtype, causal: bool = False
    ) -> AttentionLayout:
        """The layout of a [batch, length] batch (`shape`; a torch.Size will do)."""
        bias = attention_bias_from_mask(attention_mask, dtype, causal)
        if attention_mask is None or bias is None:
            return cls(None, causal)
        batch, length = shape
        real_positions = attention_mask.flatten().nonzero().flatten()
        layout = cls(bias, causal, real_positions, batch, length)
        layout._split_into_groups(attention_mask, real_positions, dtype)
        return layout

    def _split_into_groups(self, attention_mask: torch.Tensor, real_positions: torch.Tensor, dtype: torch.dtype) -> None:
        batch, length = attention_mask.shape
        columns = torch.arange(1, length + 1, device=attention_mask.device)
        widths = (attention_mask * columns).amax(dim=1).clamp(min=1)  # each row's last real column + 1
        order = torch.argsort(widths, descending=True, stable=True)
        sorted_widths = widths[order].tolist()
        boundaries = _group_boundaries(sorted_widths)
        if len(boundaries) == 2:
            return  # one group: the whole batch's grid is as narrow as it gets
        packed_of = torch.full((batch * length,), -1, dtype=torch.long, device=attention_mask.device)
        packed_of[real_positions] = torch.arange(len(real_positions), device=attention_mask.device)
        self.groups = []
        for first, end in zip(boundaries[:-1], boundaries[1:]):
            rows, width = order[first:end], sorted_widths[first]
            group_mask = attention_mask[rows, :width]
            grid_index = group_mask.flatten().nonzero().flatten()
            token_index = packed_of[rows[grid_index // width] * length + grid_index % width]
            self.groups.append(
                AttentionGroup(rows, width, token_index, grid_index, attention_bias_from_mask(group_mask, dtype, self.causal))
            )
        self.ungroup_index = torch.argsort(torch.cat([group.token_index for group in self.groups]))
        self.unsort_rows = torch.argsort(order)

    def grids(self, packed: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
        """Packed [N, D] (or unpacked [B, L, D]) -> the attention grids [rows, columns, D] with their masks."""
        if self.groups is None:
            return [(self.pad(packed), self.bias)]
        grids = []
        for group in self.groups:
            grid = packed.new_zeros(len(group.rows) * group.length, packed.shape[-1])
            grid = grid.index_copy(0, group.grid_index, packed.index_select(0, group.token_index))
            grids.append((grid.view(len(group.rows), group.length, -1), group.bias))
        return grids

    def from_grids(self, grids: list[torch.Tensor]) -> torch.Tensor:
        """The inverse of `grids`: attention outputs back in the blocks' layout."""
        if self.groups is None:
            return self.unpad(grids[0])
        if self.ungroup_index is None:
            raise ValueError("an AttentionLayout with groups needs their ungroup_index")
        tokens = [grid.flatten(0, 1).index_select(0, group.grid_index) for grid, group in zip(grids, self.groups)]
        return torch.cat(tokens).index_select(0, self.ungroup_index)

    def group_rows(self) -> list[torch.Tensor | None]:
        """The batch rows of each grid (None: all rows, in order)."""
        return [None] if self.groups is None else [group.rows for group in self.groups]

    def rows_from_groups(self, per_group: list[torch.Tensor]) -> torch.Tensor:
        """Per-row results of each group [rows, D] -> [B, D] in batch order."""
        if self.groups is None:
            return per_group[0]
        if self.unsort_rows is None:
            raise ValueError("an AttentionLayout with groups needs their unsort_rows")
        return torch.cat(per_group).index_select(0, self.unsort_rows)

    def unpad(self, padded: torch.Tensor) -> torch.Tensor:
        """[B, L, D] -> [N, D] real tokens (unchanged when the batch is not unpadded)."""
        if self.real_positions is None:
            return padded
        return padded.flatten(0, 1).index_select(0, self.real_positions)

    def first_token_rows(self) -> torch.Tensor:
        """Rows of the packed [N, D] tensor that hold each sequence's first token (only for an unpadded batch)."""
        if self.real_positions is None:
            raise ValueError("first_token_rows is for a packed (unpadded) batch; without real_positions the first tokens are at position 0")
        return (self.real_positions % self.length == 0).nonzero().flatten()

    def pad(self, packed: torch.Tensor) -> torch.Tensor:
        """[N, D] real tokens -> [B, L, D] with zeros at padding (unchanged when not unpadded)."""
        if self.real_positions is None:
            return packed
        grid = packed.new_zeros(self.batch * self.length, packed.shape[-1])
        return grid.index_copy(0, self.real_positions, packed).view(self.batch, self.length, -1)


def _group_boundaries(widths: list[int]) -> list[int]:
    """Split rows sorted by width (widest first) into runs minimizing the attention work:
    sum over groups of rows x width^2, plus ATTENTION_CALL_COST per group. Returns the run
    boundaries [0, ..., len(widths)]; an exact dynamic programme over where runs start."""
    count = len(widths)
    squared = np.asarray(widths, dtype=np.float64) ** 2
    best = np.zeros(count + 1)
    start_of_last = np.zeros(count + 1, dtype=np.int64)
    for end in range(1, count + 1):
        starts = np.arange(end)
        # A run [start, end) is as wide as its first (widest) row.
        costs = best[:end] + (end - starts) * squared[:end] + ATTENTION_CALL_COST
        start_of_last[end] = int(np.argmin(costs))
        best[end] = costs[start_of_last[end]]
    boundaries = [count]
    while boundaries[-1] > 0:
        boundaries.append(int(start_of_last[boundaries[-1]]))
    return boundaries[::-1]


def attention_bias_from_mask(attention_mask: torch.Tensor | None, dtype: torch.dtype, causal: bool = False) -> torch.Tensor | None:
    """Additive [B, 1, 1, L] bias hiding padded keys; None when nothing is padded.

    Returning None for unpadded batches (the common case in packed pre-training) lets SDPA
    use its fastest kernel. A large negative finite value rather than -inf keeps rows of
    all-padding queries from turning into NaN.
    """
    if attention_mask is None or bool(attention_mask.all()):
        return None
    return padding_bias(attention_mask, dtype, causal)


def padding_bias(attention_mask: torch.Tensor, dtype: torch.dtype, causal: bool = False) -> torch.Tensor:
    """Additive [B, 1, 1, L] bias hiding padded keys (and future ones when causal), even where nothing is padded."""
    bias = (1.0 - attention_mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min
    if causal:
        length = attention_mask.shape[1]
        future = torch.ones(length, length, dtype=torch.bool, device=attention_mask.device).triu(1)
        bias = bias.masked_fill(future, torch.finfo(dtype).min)
    return bias


class BertModel(nn.Module):
    # True while a graph is traced for export (`prefine export --format onnx`): the forward then
    # takes the plain padded path, whose every step is a tensor operation, instead of the layout
    # above, which branches on the mask's values (no padding, the unpadded rows, the length groups)
    # and would freeze the traced batch's shape and padding into the graph.
    padded_forward: bool = False

    def __init__(self, config: BertConfig, add_pooling_layer: bool = True):
        super().__init__()
        self.config = config
        self.embeddings = BertEmbeddings(config)
        # Narrow embeddings (ELECTRA-Small's) are projected up to the blocks' width after their
        # LayerNorm and dropout, where transformers' ElectraModel projects them; BERT has no such layer.
        self.embeddings_project = (
            nn.Linear(config.embedding_width, config.hidden_size) if config.embedding_width != config.hidden_size else None
        )
        self.encoder = BertEncoder(config)
        self.pooler = BertPooler(config) if add_pooling_layer else None

    def required_pooler(self) -> BertPooler:
        """The pooler, for heads that read [CLS] through it (they build their BertModel with one)."""
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
        """Sequence output [B, L, H] for token ids [B, L]; attention_mask is 1 for real tokens.

        Outputs at padded positions are zeros. With `first_token_only`, only the [CLS] output
        [B, H] is computed in the last block (what a sequence classifier reads).
        """
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        hidden = self.embeddings(input_ids, token_type_ids)
        if self.embeddings_project is not None:
            hidden = self.embeddings_project(hidden)
        if self.padded_forward:
            return self._padded_forward(hidden, attention_mask, causal, first_token_only)
        layout = AttentionLayout.from_mask(attention_mask, input_ids.shape, hidden.dtype, causal)
        if first_token_only:
            return self.encoder(layout.unpad(hidden), layout, first_token_only=True)
        # Positions that are padding come back as zeros: nothing may read them.
        return layout.pad(self.encoder(layout.unpad(hidden), layout))

    def _padded_forward(
        self, hidden: torch.Tensor, attention_mask: torch.Tensor | None, causal: bool, first_token_only: bool
    ) -> torch.Tensor:
        """The forward on the whole [B, L] grid with the mask always applied: what `padded_forward` traces."""
        if attention_mask is None:
            attention_mask = torch.ones(hidden.shape[:2], dtype=torch.long, device=hidden.device)
        layout = AttentionLayout(padding_bias(attention_mask, hidden.dtype, causal), causal)
        if first_token_only:
            return self.encoder(hidden, layout, first_token_only=True)
        # Zeros at padding, as the unpadded path returns them, so every output matches it there too.
        return self.encoder(hidden, layout) * attention_mask[:, :, None].to(hidden.dtype)


def init_bert_weights(module: nn.Module, initializer_range: float) -> None:
    """BERT's initialization: N(0, 0.02) weights, zero biases, unit LayerNorm, zero [PAD] row."""
    for child in module.modules():
        if isinstance(child, nn.Linear):
            nn.init.normal_(child.weight, mean=0.0, std=initializer_range)
            if child.bias is not None:
                nn.init.zeros_(child.bias)
        elif isinstance(child, nn.Embedding):
            nn.init.normal_(child.weight, mean=0.0, std=initializer_range)
            if child.padding_idx is not None:
                with torch.no_grad():
                    child.weight[child.padding_idx].zero_()
        elif isinstance(child, nn.LayerNorm):
            nn.init.ones_(child.weight)
            nn.init.zeros_(child.bias)


# Trockman & Kolter's mimetic initialisation ("Mimetic Initialization of Self-Attention Layers",
# ICML 2023) sets each head's W_Q^T W_K near noise * Z + identity * I for a random Z;
# 0.5 / 0.5 is the one setting this repo measured (benchmarks/README.md), not a tuned optimum.
MIMETIC_NOISE = 0.5
MIMETIC_IDENTITY = 0.5


@torch.no_grad()
def apply_mimetic_init(module: nn.Module, initializer_range: float, generator: torch.Generator) -> None:
    """Start every head's query-key product near the identity and every position table as sinusoids.

    With BERT's N(0, 0.02) init the attention logits start near zero and their gradient with
    respect to W_Q is scaled by W_K (and the other way round), so every head starts uniform
    and leaves that saddle slowly; random position rows say nothing about which positions
    are near each other. Masked LM then spends its first thousand-odd steps on a plateau,
    predicting from the bag of words (on the built-in corpus held-out MLM loss crept from
    6.2 to 5.1 nats over 1,250 steps before it fell fast). A near-identity W_Q^T W_K starts
    each head off the saddle, attending to the token itself (and tokens like it) far more
    than to any other (the pattern Trockman & Kolter found in trained heads); sinusoidal
    rows make moving k positions one fixed linear map, the same for every position, which a
    head can learn once instead of row by row. Both are only initial values: the
    architecture, checkpoints and export are unchanged.
    """
    for child in module.modules():
        if isinstance(child, BertEmbeddings):
            table = child.position_embeddings.weight
            positions, width = table.shape
            position = torch.arange(positions, dtype=torch.float64)[:, None]
            frequency = torch.exp(-np.log(10_000.0) * torch.arange(0, width, 2, dtype=torch.float64) / width)
            sinusoids = torch.zeros(positions, width, dtype=torch.float64)
            sinusoids[:, 0::2] = torch.sin(position * frequency)
            sinusoids[:, 1::2] = torch.cos(position * frequency)[:, : width // 2]
            # The same scale as the word rows, so the embedding LayerNorm weighs both alike.
            table.copy_(sinusoids / sinusoids.std() * initializer_range)
        elif isinstance(child, BertSelfAttention):
            width = child.query.weight.shape[1]
            for head in range(child.num_heads):
                target = MIMETIC_NOISE * torch.randn(width, width, generator=generator, dtype=torch.float64) / width**0.5
                target += MIMETIC_IDENTITY * torch.eye(width, dtype=torch.float64)
                # The best rank-head_dim factorisation W_Q_h^T W_K_h of the target: its top left
                # singular vectors are the top eigenvectors of target @ target.T, and the right ones
                # follow from them. A symmetric eigensolver does this 2-3x faster than a full SVD,
                # which matters at start-up for wide models (one factorisation per head).
                eigenvalues, eigenvectors = torch.linalg.eigh(target @ target.T)
                left = eigenvectors[:, -child.head_dim :]
                singular = eigenvalues[-child.head_dim :].clamp_min(0).sqrt()
                right = (target.T @ left) / singular
                rows = slice(head * child.head_dim, (head + 1) * child.head_dim)
                child.query.weight[rows] = (singular.sqrt()[:, None] * left.T).to(child.query.weight.dtype)
                child.key.weight[rows] = (singular.sqrt()[:, None] * right.T).to(child.key.weight.dtype)


def count_parameters(module: nn.Module) -> int:
    return sum(parameter.numel() for parameter in module.parameters())


def encoder_flops_per_token(config: BertConfig, sequence_length: int) -> float:
    """Forward FLOPs per token of the encoder blocks: 2 x matmul params plus attention scores."""
    per_layer = 2 * (4 * config.hidden_size**2 + 2 * config.hidden_size * config.intermediate_size)
    attention = 2 * 2 * sequence_length * config.hidden_size
    return config.num_hidden_layers * (per_layer + attention)
