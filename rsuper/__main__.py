"""``python -m rsuper`` is the ``rsuper`` command."""

from rsuper.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
