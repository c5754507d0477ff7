"""Deployable consumers: ``python -m consumers <name>``."""
