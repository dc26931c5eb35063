"""Makes ``tests/ir/strategies.py`` importable from the tests beside it (``from strategies import ...``)."""

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
