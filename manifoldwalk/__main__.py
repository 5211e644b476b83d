"""``python -m manifoldwalk``: the same as the ``manifoldwalk`` command."""

import sys

from manifoldwalk.cli import main

sys.exit(main())
