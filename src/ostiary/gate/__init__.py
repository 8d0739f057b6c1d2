"""The gate: the one home of "who is calling, and may they?".

It owns the read model of grants and credentials, the authenticators, the admission chain
(``admit`` and the ``explain`` built on the very same steps), throttling of failed
authentications, replay protection of client assertions and the trusted-proxy view of the
client address. Every entry point (runtime, admin API, token endpoint, console) asks here.
"""
