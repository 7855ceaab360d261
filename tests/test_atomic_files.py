"""prefine.atomic_files: a file appears whole or not at all, and what a killed writer left is removed by the next one."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from prefine.atomic_files import check_output_path, process_start_time, remove_dead_partials, remove_dead_partials_of, write_atomically
from prefine.errors import PrefineError
from tests.conftest import dead_pid


def test_the_file_appears_only_when_finished_and_no_partial_is_left(tmp_path: Path):
    final = tmp_path / "out.jsonl"
    final.write_text("older\n")
    seen = {}

    def write(partial: Path) -> int:
        partial.write_text("first\n")
        seen["final while writing"] = final.read_text()
        seen["partial"] = partial
        partial.write_text("first\nsecond\n")
        return 2

    assert write_atomically(final, write) == 2
    assert seen["final while writing"] == "older\n"  # a reader never met half the new file
    assert seen["partial"].parent == tmp_path and seen["partial"].name.startswith(f".out.jsonl.{os.getpid()}-")
    assert final.read_text() == "first\nsecond\n"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["out.jsonl"]


def test_a_failed_write_keeps_the_older_file_and_leaves_no_partial(tmp_path: Path):
    final = tmp_path / "out.jsonl"
    final.write_text("older\n")

    def write(partial: Path) -> None:
        partial.write_text("half")
        raise KeyboardInterrupt  # Ctrl-C halfway

    with pytest.raises(KeyboardInterrupt):
        write_atomically(final, write)
    assert final.read_text() == "older\n"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["out.jsonl"]


def test_partials_of_dead_writers_are_removed_and_a_live_writers_kept(tmp_path: Path):
    killed = dead_pid()
    assert process_start_time(killed) is None and process_start_time(os.getpid()) is not None
    dead = tmp_path / f".out.jsonl.{killed}-0badc0de.partial"
    alive = tmp_path / f".out.jsonl.{os.getpid()}-0badc0de.partial"
    other_files = tmp_path / f".other.tsv.{dead_pid()}-0badc0de.partial"
    unrelated = tmp_path / ".notes.partial"  # not a name this module writes: no writer to ask about
    for path in (dead, alive, other_files, unrelated):
        path.write_text("half")
    remove_dead_partials_of(tmp_path / "out.jsonl")
    assert not dead.exists() and alive.exists() and other_files.exists() and unrelated.exists()
    remove_dead_partials(tmp_path)
    assert not other_files.exists() and alive.exists() and unrelated.exists()


def test_a_final_name_with_glob_characters_matches_only_itself(tmp_path: Path):
    mine = tmp_path / f".out[1].jsonl.{dead_pid()}-0badc0de.partial"
    lookalike = tmp_path / f".out1.jsonl.{dead_pid()}-0badc0de.partial"
    for path in (mine, lookalike):
        path.write_text("half")
    remove_dead_partials_of(tmp_path / "out[1].jsonl")
    assert not mine.exists() and lookalike.exists()


def test_an_output_no_finished_file_could_reach_is_refused_in_one_line(tmp_path: Path):
    with pytest.raises(PrefineError, match="folder .*missing.* does not exist; create it"):
        check_output_path(tmp_path / "missing" / "out.jsonl", "--output")
    (tmp_path / "out.jsonl").mkdir()
    with pytest.raises(PrefineError, match="is a folder; give a file name"):
        check_output_path(tmp_path / "out.jsonl", "--output")
    check_output_path(tmp_path / "fine.jsonl", "--output")  # a new file in an existing folder is fine
