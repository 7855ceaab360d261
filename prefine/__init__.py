"""prefine: pre-train a BERT-style encoder on your own corpus, then fine-tune it on your task.

The package is laid out by pipeline stage, so the data flow reads from the folder names:
corpus -> tokenizer -> pretraining_data -> model -> training -> checkpoint -> tasks -> metrics.
"""

__version__ = "0.1.0"
