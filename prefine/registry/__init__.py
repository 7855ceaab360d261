"""The run registry: every import, pre-training, fine-tuning and export, and how they descend.

`RunRegistry` is the SQLite store, `recorded_run` wraps a command so its run is recorded from start
to outcome, and `add_registry_commands` mounts `prefine runs`, `lineage` and `plot` on the CLI.
"""

from prefine.registry.commands import add_registry_commands
from prefine.registry.recording import RunHandle, recorded_run
from prefine.registry.store import RunRecord, RunRegistry, default_registry_path

__all__ = ["RunHandle", "RunRecord", "RunRegistry", "add_registry_commands", "default_registry_path", "recorded_run"]
