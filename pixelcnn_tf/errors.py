"""One error type for bad user input, turned into a single line and exit code 2 by the CLIs."""
from __future__ import annotations

import sys
from typing import Callable


class UserError(Exception):
    """A mistake in what the user asked for (bad path, bad value): shown as one line, no traceback."""


def run_cli(main: Callable[[], int | None], prog: str) -> int:
    """Run a CLI body; turn UserError (and Ctrl-C) into one line on stderr and a non-zero exit."""
    try:
        return int(main() or 0)
    except UserError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
