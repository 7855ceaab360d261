"""`--deterministic`: what it takes for a seed to mean one result, bit for bit, on CPU.

Two parts. Some libraries read their settings once, when they load, so `prepare_environment`
sets them and must run before torch is imported (the CLI calls it when it sees --deterministic):
MKL's conditional numerical reproducibility (MKL_CBWR=AUTO: one code path whatever the memory
alignment of a matrix, which otherwise varies from run to run with malloc) and no dynamic
thread counts (MKL_DYNAMIC, OMP_DYNAMIC), so every run splits each reduction the same way; on
CUDA, cuBLAS's fixed workspace. `apply` then asks PyTorch for deterministic kernels (an operation
without one raises instead of silently varying) and turns off cuDNN's autotuning.

What it guarantees: repeated runs, and runs resumed after any interruption, give identical bits
on CPU for the same data, seed, settings and number of threads. Across different thread counts
the order of floating-point sums differs, so the last bits do too; keep --num-threads fixed.
Without --deterministic, on CPU repeated and resumed runs are usually identical as well (the crash
harness checks resume bit for bit with one thread), but nothing pins the libraries' choices.
"""

from __future__ import annotations

import json
import os

ENVIRONMENT = {"MKL_CBWR": "AUTO", "MKL_DYNAMIC": "FALSE", "OMP_DYNAMIC": "FALSE", "CUBLAS_WORKSPACE_CONFIG": ":4096:8"}


def requested(argv: list[str]) -> bool:
    """Whether this command line trains deterministically: --deterministic, or --resume of a run made with it."""
    if "--deterministic" in argv:
        return True
    for index, arg in enumerate(argv):
        folder = (
            arg.split("=", 1)[1]
            if arg.startswith("--resume=")
            else (argv[index + 1] if arg == "--resume" and index + 1 < len(argv) else None)
        )
        if folder:
            try:
                with open(os.path.join(folder, "run.json"), encoding="utf-8") as handle:
                    return bool(json.load(handle).get("training", {}).get("deterministic"))
            except (OSError, ValueError, AttributeError):
                return False  # the recipe reports an unreadable run folder properly
    return False


def prepare_environment() -> None:
    """Set the load-time settings (before torch is imported); values the user set are kept."""
    for name, value in ENVIRONMENT.items():
        os.environ.setdefault(name, value)


def apply(device_type: str = "cpu") -> None:
    """Run-time settings, at the start of training on `device_type`."""
    import torch

    prepare_environment()  # for child processes (DataLoader workers, torchrun restarts); torch itself is loaded already
    # The guarantee is for CPU. On CUDA some kernels have no deterministic version; there they warn
    # rather than stop a GPU run that asked for as much determinism as it can get (untested on GPU).
    torch.use_deterministic_algorithms(True, warn_only=device_type != "cpu")
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
