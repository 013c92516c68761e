"""``python -m ntkeq``: the same as the ``ntkeq`` command."""

import sys

from ntkeq.cli import main

if __name__ == "__main__":
    sys.exit(main())
