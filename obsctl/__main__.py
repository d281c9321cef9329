"""`python -m obsctl`: the same command line as the `obsctl` script."""

import sys

from obsctl.cli import main

sys.exit(main())
