"""convcalc: exact arithmetic of convolutions (shapes, parameters, MACs, receptive fields)."""

__version__ = "0.1.0"
