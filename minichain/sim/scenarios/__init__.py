"""Experiments the ``minichain sim`` commands run."""
