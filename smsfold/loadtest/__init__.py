"""``smsfold loadtest``: peak-season inbound traffic through the vendors' own entry point."""

from smsfold.loadtest.options import LoadTestOptions, OptionError
from smsfold.loadtest.run import run_loadtest

__all__ = ["LoadTestOptions", "OptionError", "run_loadtest"]
