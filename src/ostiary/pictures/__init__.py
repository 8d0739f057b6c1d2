"""Pictures rendered on the server as SVG text (no scripts, no CDN): pure functions of data.

Below every domain and edge: the console embeds the markup, domains hand it the numbers.
"""
