"""The ``pipeline`` CLI's subcommands, one module each."""
