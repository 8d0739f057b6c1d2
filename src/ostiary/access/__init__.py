"""Roles, role collections, assignments and the one access decision."""
