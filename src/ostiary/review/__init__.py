"""Access review: findings about a sub-account's technical users and their credentials,
and the numbers behind the console's pictures (issue 11 items 5 and 6)."""
