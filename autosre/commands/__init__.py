"""The ``autosre`` subcommands, grouped by what they touch; engine/cli.py wires them."""
