"""``python -m mgmt_audit.cli`` runs the same entry point as the ``mgmt-audit`` script."""

import sys

from mgmt_audit.cli import main

sys.exit(main())
