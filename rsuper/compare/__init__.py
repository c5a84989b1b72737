"""R-Super: compare stage (see the package docstring of rsuper)."""
