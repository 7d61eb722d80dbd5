"""Subcommands of the ``kueatomic`` CLI, one module each (see ``kueatomic.cli``)."""
