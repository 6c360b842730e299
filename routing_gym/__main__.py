"""``python -m routing_gym``: the command line."""

import sys

from routing_gym.cli import main

if __name__ == "__main__":  # worker processes may import this module: do nothing then
    sys.exit(main())
