"""Sub-accounts of the global account, their plans and members."""
