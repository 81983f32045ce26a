"""One error type for bad user input, turned into a single line and exit code 2 by the CLIs."""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from typing import Callable


class UserError(Exception):
    """A mistake in what the user asked for (bad path, bad value): shown as one line, no traceback."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse with its errors as one 'prog: error: ...' line and exit 2 (no usage block): the CLIs' one error shape."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


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


def import_tensorflow_quietly() -> None:
    """Import TensorFlow with its C++ start-up chatter (CUDA probes) kept off stderr.

    That chatter is written before TF_CPP_MIN_LOG_LEVEL takes effect, so the CLIs would otherwise print
    lines about missing GPUs before every message. If the import fails, what it printed is replayed.
    """
    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            import tensorflow  # noqa: F401
        except BaseException:
            os.dup2(saved, 2)
            capture.seek(0)
            sys.stderr.write(capture.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def first_line(error: BaseException) -> str:
    """The first non-empty line of an exception's message: library errors often carry pages of context."""
    lines = [line for line in str(error).strip().splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__
