"""Thin recipes behind the CLI verbs: each wires stage configs to flags and runs the stages."""
