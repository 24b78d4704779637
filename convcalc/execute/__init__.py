"""Pure-NumPy execution kernels; the public API lives in :mod:`convcalc.execute.kernels`."""
