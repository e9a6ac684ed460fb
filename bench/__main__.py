"""``python -m bench`` (from the repository root): the whole benchmark suite; see bench/suite.py."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # the bench modules import by name

from suite import main

main()
