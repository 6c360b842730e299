"""``python -m routing_gym``: the command line."""

import sys

from routing_gym.cli import main

sys.exit(main())
