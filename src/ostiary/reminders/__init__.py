"""Expiry reminders: one mail per credential and threshold (30, 7, 1 days before its end)."""
