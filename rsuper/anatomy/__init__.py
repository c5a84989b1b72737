"""R-Super: anatomy stage (see the package docstring of rsuper)."""
