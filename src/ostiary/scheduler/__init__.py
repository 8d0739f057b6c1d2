"""The scheduler: named jobs run every few seconds, on one node at a time (a lease row)."""
