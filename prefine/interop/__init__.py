"""Hugging Face interoperability: import any BERT checkpoint (folder or Hub name); the layouts an export writes.

ONNX lives here too: `onnx_export` writes and checks a model's graph (`prefine export --format
onnx`), and `onnx_runtime` runs a task model's encoder in ONNX Runtime, fp32 or int8 (the
`--backend` of predict, evaluate and serve).

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
