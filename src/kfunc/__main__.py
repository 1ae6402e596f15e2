"""The ``kfunc`` command and ``python -m kfunc``.

Ctrl-C is honoured from the first line kfunc runs: until a command starts (the
imports, argument parsing) and after it ends, SIGINT exits at once with status
130 and one line; while a command runs, it raises KeyboardInterrupt so that
guests, links and temporary files are cleaned up on the way out (see
:func:`kfunc.cli.main`). Before that first line, the interpreter is starting:
a SIGINT then ends the process as the signal's default action (the shell
shows status 130) or, inside Python's own start-up (``site``), as Python's
KeyboardInterrupt does.
"""

import os
import sys

# The C module under `signal`: `import signal` costs enum, functools and
# collections (~10 ms under load) before Ctrl-C is handled.
_signal = __import__("_signal")


def interrupted(signum: int, frame: object) -> None:
    """SIGINT where there is nothing to clean up: one line, status 130."""
    os.write(2, b"interrupted\n")
    os._exit(130)


# At once, on import: both entry points (the `kfunc` script imports this
# module, `python -m kfunc` runs it) get here before importing anything more.
_signal.signal(_signal.SIGINT, interrupted)


def run() -> None:
    """The ``kfunc`` command's entry point."""
    from kfunc.cli import main

    sys.exit(main())


if __name__ == "__main__":
    run()
