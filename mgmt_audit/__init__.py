"""mgmt-audit: re-run the MGMT-from-MRI experiments with controls and report whether any signal exists."""

__version__ = "0.1.0"
