"""R-Super: infer stage (see the package docstring of rsuper)."""
