"""R-Super: data stage (see the package docstring of rsuper)."""
