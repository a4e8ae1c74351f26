"""`python -m shakespeare_lm` and the `shakespeare-lm` script: a Ctrl-C guard around the command line.

The commands themselves live in cli.py (after nanoGPT's train.py / sample.py entry points).
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (130 after Ctrl-C, even while torch loads)."""
    try:
        # Imported here, not at the top, so that a Ctrl-C during the seconds torch takes to import
        # ends in one line below instead of a traceback.
        from .cli import run

        return run(argv)
    except KeyboardInterrupt:
        print("shakespeare-lm: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
