"""`python -m fleet.cli`: the same as the `fleet` console script."""

import sys

from fleet.cli.entry import main

sys.exit(main())
