"""Runners: the only code that starts processes, notebooks and containers."""
