"""R-Super: evaluate stage (see the package docstring of rsuper)."""
