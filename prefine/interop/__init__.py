"""Hugging Face interoperability: import any BERT checkpoint (folder or Hub name); the layouts an export writes.

The `prefine export` command itself is a recipe (`prefine.recipes.export`): it needs the task
registry, which sits above this package.
"""

from prefine.interop.huggingface import (
    ImportedCheckpoint,
    ImportReport,
    bert_tokenizer_from_vocab,
    download_from_hub,
    import_hf_checkpoint,
    is_hf_model_dir,
    load_hf_config,
    load_hf_state_dict,
    load_hf_tokenizer,
    load_into,
)

__all__ = [
    "ImportReport",
    "ImportedCheckpoint",
    "bert_tokenizer_from_vocab",
    "download_from_hub",
    "import_hf_checkpoint",
    "is_hf_model_dir",
    "load_hf_config",
    "load_hf_state_dict",
    "load_hf_tokenizer",
    "load_into",
]
