"""R-Super: losses stage (see the package docstring of rsuper)."""
