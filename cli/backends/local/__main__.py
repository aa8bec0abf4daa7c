"""`python -m stseg_cli.backends.local RUN_DIR WORKERS`: the detached supervisor of a local run."""

import sys

from stseg_cli.backends.local.supervisor import main

sys.exit(main(sys.argv[1:]))
