"""Ostiary: a self-hosted identity and access service for integration platforms."""

__version__ = "0.1.0"
