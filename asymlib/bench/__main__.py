"""``python -m asymlib.bench``: see :mod:`asymlib.bench`."""
import sys

from .cli import main

sys.exit(main())
