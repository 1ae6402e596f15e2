"""``python -m kfunc.vm.agent``: see :func:`kfunc.vm.agent.main`."""

import sys

from kfunc.vm.agent import main

sys.exit(main())
