"""``python -m asymlib.runs plan|train|status``: see :mod:`asymlib.pipeline.cli`."""
import sys

from ..pipeline.cli import main

sys.exit(main())
