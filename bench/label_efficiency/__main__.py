"""``python -m bench.label_efficiency``: see the package's docstring."""

import sys

from bench.label_efficiency.run import main

main(sys.argv[1:])
