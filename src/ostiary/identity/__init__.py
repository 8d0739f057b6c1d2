"""The directory of users: persons and technical users, their passwords and sign-in."""
