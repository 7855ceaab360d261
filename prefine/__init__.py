"""prefine: pre-train a BERT-style encoder on your own corpus, then fine-tune it on your task.

The package is laid out by pipeline stage, so the data flow reads from the folder names:
corpus -> tokenizer -> pretraining_data -> model -> training -> checkpoint -> tasks -> metrics.
"""

import os

# GNU OpenMP's default lets PyTorch's idle threads spin before sleeping. On a small machine
# anything else running (the tokenizer's threads while a run starts, another process) then takes
# a core from a spinning pair, and steps run 10-40x slower until the scheduler settles: the slow
# first steps of every short run (benchmarks/first_steps.py). Threads that sleep at once change
# no result (tests/model/test_bert.py). It must be set before torch loads its OpenMP runtime;
# a value the user exported wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
