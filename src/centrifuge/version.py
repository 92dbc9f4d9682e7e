"""The package's version (a leaf: the report, checkpoints and the CLI read it from here)."""

__version__ = "0.1.0"  # keep equal to pyproject.toml's version
