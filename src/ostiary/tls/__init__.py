"""HTTPS served by Ostiary itself, with optional client certificates (issue 10, point 3).

- ``anchors``: the port the TLS stack asks "which certificates vouch for a client?";
- ``contexts``: server ``SSLContext`` objects built from those anchors, swapped per handshake
  when they change, so trust changes apply to new connections without a restart;
- ``protocol``: uvicorn's HTTP protocols plus the ASGI TLS extension uvicorn lacks;
- ``serving``: the options ``ostiary serve`` hands to uvicorn when TLS is on.
"""
