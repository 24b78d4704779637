"""Interoperability with other tools: PyTorch code export and the conventions of peer counters."""
