"""Serving the application with uvicorn on a socket bound here, so that
``--listen 127.0.0.1:0`` can say which port it got, and a port already in
use is one line naming ``--listen``, not a traceback from inside uvicorn."""

from __future__ import annotations

import socket

import uvicorn
from starlette.types import ASGIApp

from digest.errors import ConfigError


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (an IPv6 host without brackets)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP spelt out: asyncio turns Nagle's algorithm off (TCP_NODELAY)
    # only on sockets that say so, and with it on, a response written as
    # headers then body waits 40 ms for the client's delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(1024)
        return sock
    except OSError as exc:
        sock.close()
        reason = exc.strerror or str(exc)
        raise ConfigError(f"cannot listen on {url(host, port)}: {reason}; choose another "
                          "HOST:PORT", source="--listen") from exc


def url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def server(app: ASGIApp) -> uvicorn.Server:
    """A uvicorn server for ``app``; run it with ``.run(sockets=[bind(...)])``.

    No access log: every URL it would write carries a reader's token, which
    is as good as their unsubscribe button."""
    config = uvicorn.Config(app, lifespan="on", log_level="warning", access_log=False,
                            server_header=False, timeout_graceful_shutdown=5,
                            proxy_headers=False)
    return uvicorn.Server(config)
