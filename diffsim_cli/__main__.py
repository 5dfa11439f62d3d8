"""``python -m diffsim_cli``: the ``diffsim`` command."""

import sys

from diffsim_cli import main

sys.exit(main())
