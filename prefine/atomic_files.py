"""Files that appear whole or not at all, and the half-written files a killed writer leaves, removed by the next writer.

A result file (predictions, generations, a cached ONNX graph) is written under a hidden name in
its own folder, `.NAME.PID-RANDOM.partial`, and renamed over NAME only once it is finished, so a
reader never meets half a file under NAME, and two processes writing the same NAME never share a
partial file. An exception or Ctrl-C removes the partial file on the way out. A kill -9 (the OOM
killer, a pre-empted machine) cannot, so before writing, `remove_dead_partials` deletes the partial
files whose writer no longer exists: the pid in the name names no live process. A live writer's
file is always kept; a pid the kernel has since given to another process only keeps a dead
writer's file until that process ends too.

`check_output_path` refuses, before any work, an output no finished file could be renamed to.

`process_start_time` is here because liveness is what these names are checked for; the run
registry reads it too, to show a killed run as died.
"""

from __future__ import annotations

import glob
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from prefine.errors import PrefineError

Written = TypeVar("Written")
PARTIAL_SUFFIX = ".partial"


def process_start_time(pid: int) -> str | None:
    """The kernel's start time of process `pid` (clock ticks since boot), None if it does not exist.

    Together with the pid it names one process for good: pids are reused, start times are not.
    Where /proc is missing (not Linux) the answer is "" for a live pid, so only the pid is compared.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        if Path("/proc/self/stat").exists():
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return ""
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces; count fields after it.
    return stat.rsplit(")", 1)[1].split()[19]


def check_output_path(final: Path, flag: str) -> None:
    """One line naming the problem when `final` cannot receive a finished file: its folder is missing or read-only, or it is a folder."""
    folder = final.parent
    if not folder.is_dir():
        raise PrefineError(f"{flag} {final}: the folder {folder} does not exist; create it or write elsewhere")
    if final.is_dir():
        raise PrefineError(f"{flag} {final} is a folder; give a file name")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PrefineError(f"{flag} {final}: the folder {folder} is not writable; write elsewhere")


def partial_path(final: Path) -> Path:
    """Where this process writes `final` before it is finished: hidden, beside it, named after this process."""
    return final.with_name(f".{final.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}{PARTIAL_SUFFIX}")


def write_atomically(final: Path, write: Callable[[Path], Written]) -> Written:
    """`write(partial)`, then the finished file renamed to `final`; returns what `write` returned.

    A failure or an interrupt leaves no partial file, and whatever `final` held before is untouched.
    """
    partial = partial_path(final)
    try:
        written = write(partial)
        os.replace(partial, final)
        return written
    finally:
        partial.unlink(missing_ok=True)


def remove_dead_partials(folder: Path, names: str = "*") -> None:
    """Remove the partial files in `folder` (of final names matching the glob `names`) whose writer process is gone."""
    for path in folder.glob(f".{names}.*{PARTIAL_SUFFIX}"):
        writer = path.name.removesuffix(PARTIAL_SUFFIX).rsplit(".", 1)[-1].split("-", 1)[0]
        if writer.isdigit() and process_start_time(int(writer)) is None:
            path.unlink(missing_ok=True)


def remove_dead_partials_of(final: Path) -> None:
    """Remove the partial files of `final` whose writer process is gone (a killed earlier write of the same file)."""
    remove_dead_partials(final.parent, glob.escape(final.name))
