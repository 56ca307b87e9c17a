"""``python -m core``: the command line for headless work."""

from core.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
