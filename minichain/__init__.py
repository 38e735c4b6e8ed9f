"""minichain: a small, honest proof-of-work node and a laboratory for consensus."""

__version__ = "0.1.0"
