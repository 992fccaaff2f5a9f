"""``python -m mmz`` is the ``mmz`` command."""

import sys

from mmz.cli import main

sys.exit(main())
