"""One module per hardware kind: its config model and the adapter to its ``hw`` generator."""
