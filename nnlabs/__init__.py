"""nnlabs: Neural Nets from Scratch — conditional computation under a budget."""

__version__ = "0.1.0"
