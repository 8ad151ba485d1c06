"""The editor's desk: what an editor runs before an issue goes out.

It owns ``digest preview`` (the issue rendered by a real Chromium, as PNGs)
and ``digest check`` (the preflight: size, images, links, contrast, bulk-send
prerequisites). It may import delivery, audience, email and content, never
cli or web; nothing but cli imports it.
"""
