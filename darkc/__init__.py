"""darkc: turn a trained low-light raw enhancement network into a fast mobile model."""

__version__ = "0.1.0"
