"""Which column of a table holds which input: the one the user named (checked) or one detected by name (announced once).

Every task that reads tables (.tsv, .csv, .jsonl, a Hugging Face dataset) picks its columns the
same way. A `ColumnPicker` takes one role at a time (text, label, source, target, ...): a column
named by a flag must exist, otherwise the first of the role's usual names the table has is taken
(never a column of JSON objects: their dotted fields are named instead), and every detected
choice is announced in one line the first time it comes up (a comparison reads the same files for
many fine-tunes, and the line is worth reading once, not once per fine-tune).
"""

from __future__ import annotations

from collections.abc import Sequence

from prefine.errors import PrefineError
from prefine.tasks.interface import notice_once
from prefine.tasks.task_data import RecordTable


def find_column(candidates: Sequence[str], available: Sequence[str], exclude: Sequence[str | None] = ()) -> str | None:
    """The first candidate the table has, compared case-insensitively and skipping `exclude`; its name as the table spells it."""
    by_lowercase = {name.lower(): name for name in available}
    excluded = {name.lower() for name in exclude if name}
    return next((by_lowercase[name] for name in candidates if name in by_lowercase and name not in excluded), None)


class ColumnPicker:
    """Picks the columns of one table role by role, then `announce`s the detected ones in one line."""

    def __init__(self, table: RecordTable, override_flags: Sequence[str]):
        self.table = table
        self.override_flags = override_flags  # named in the announcement: how to choose otherwise
        self.detected: list[str] = []

    def pick(
        self,
        configured: str | None,
        candidates: Sequence[str],
        role: str,
        flag: str,
        required: bool = True,
        exclude: Sequence[str | None] = (),
        holds: str = "",
    ) -> str | None:
        """The column for `role`: `configured` (checked when `required` or present) or the first of `candidates` found.

        A required role that cannot be detected is an error naming the flag; an optional one is None.
        `holds` says what the column holds in that error ("the input text"); the default is "the <role>".
        """
        if configured is not None:
            if required or configured in self.table.columns:
                self.table.column(configured, f"{role} column", flag)
            return configured if configured in self.table.columns else None
        # A JSON object (KLUE-STS's "labels") is never the text or the label itself; its fields may be (labels.real-label).
        found = find_column(candidates, self.table.column_names, (*exclude, *self.table.object_columns))
        if found is None and required:
            raise PrefineError(
                f"cannot tell which column of {self.table.source} holds {holds or 'the ' + role} "
                f"(columns: {', '.join(self.table.column_names)}); choose one with {flag}{self.table.header_hint}"
            )
        if found is not None:
            self.detected.append(f"{role} '{found}'")
        return found

    def announce(self) -> None:
        if self.detected:
            notice_once(f"{self.table.source}: using {', '.join(self.detected)} (detected; override with {', '.join(self.override_flags)})")
