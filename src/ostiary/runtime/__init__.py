"""The integration runtime: flows, sender authentication, store and forward, the MPL."""
