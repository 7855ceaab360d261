"""Pre-training data: token cache on disk -> BERT instances per epoch -> masked, padded batches.

shards = cached_token_shards(lambda: documents, tokenizer, cache_root, key_parts)
batches = PretrainingBatches.from_tokenizer(shards, tokenizer, PretrainingDataConfig(), seed=0, global_batch_size=32)
batch, position = batches.batch_at(DataPosition(0, 0))  # prefine.data_position
"""

from prefine.pretraining_data.batches import PretrainingBatches, collate
from prefine.pretraining_data.config import PretrainingDataConfig
from prefine.pretraining_data.instances import Instances, build_instances, nsp_coverage_warning, sequence_length_warning
from prefine.pretraining_data.masking import continuation_lookup, mask_tokens
from prefine.pretraining_data.shards import (
    TokenShards,
    build_token_shards,
    cache_key,
    cached_token_shards,
    split_documents,
    token_counts,
)

__all__ = [
    "Instances",
    "PretrainingBatches",
    "PretrainingDataConfig",
    "TokenShards",
    "build_instances",
    "build_token_shards",
    "cache_key",
    "cached_token_shards",
    "collate",
    "continuation_lookup",
    "mask_tokens",
    "nsp_coverage_warning",
    "sequence_length_warning",
    "split_documents",
    "token_counts",
]
