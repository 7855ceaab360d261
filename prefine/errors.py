"""User-facing errors: one clear line naming the problem and the fix.

Anything the user can cause (a missing file, a wrong column, a checkpoint that does not match
its tokenizer) is raised as `PrefineError`; the CLI prints its message on one line and exits
non-zero without a traceback. Programming errors stay ordinary exceptions so they keep their
traceback.
"""


class PrefineError(Exception):
    """A problem with the user's input or environment, with a message that says how to fix it."""
