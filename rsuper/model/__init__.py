"""R-Super: model stage (see the package docstring of rsuper)."""
