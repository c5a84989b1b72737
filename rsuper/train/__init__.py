"""R-Super: train stage (see the package docstring of rsuper)."""
