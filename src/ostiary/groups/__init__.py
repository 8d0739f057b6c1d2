"""Groups in the directory, their role collections, group-owned technical users, invitations."""
