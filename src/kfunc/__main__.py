"""``python -m kfunc``: the same as the ``kfunc`` command."""

import sys

from kfunc.cli import main

sys.exit(main())
