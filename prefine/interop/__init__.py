"""Hugging Face interoperability: import any BERT checkpoint (folder or Hub name), export runs to transformers."""

from prefine.interop.export import add_export_command, export_hf
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
    "add_export_command",
    "bert_tokenizer_from_vocab",
    "download_from_hub",
    "export_hf",
    "import_hf_checkpoint",
    "is_hf_model_dir",
    "load_hf_config",
    "load_hf_state_dict",
    "load_hf_tokenizer",
    "load_into",
]
