"""Benchmark only: serve the floor app (:mod:`asgi_floor`) with uvicorn in N worker processes on 127.0.0.1.

What ``uvicorn asgi_floor:app --workers N`` does, with one difference: the listening socket is created as
``socket(AF_INET, SOCK_STREAM, IPPROTO_TCP)``. ``uvicorn --workers`` creates it with ``proto=0``; accepted
sockets inherit that, and asyncio only sets ``TCP_NODELAY`` on sockets whose ``proto`` is ``IPPROTO_TCP``. Since
uvicorn writes the response head and body in two ``send`` calls, Nagle's algorithm then holds the body back
until the client's delayed ACK: every response took ~40 ms here (22 requests/s for one client). BentoML is not
affected (its workers rebuild the socket from a file descriptor, which reads the real protocol).

    python serve_floor.py --port 3000 --workers 2      # from benchmarks/serving/
"""

from __future__ import annotations

import argparse
import socket

import uvicorn
from uvicorn.supervisors import Multiprocess


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--workers", type=int, default=1)
    args = ap.parse_args()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    sock.set_inheritable(True)
    config = uvicorn.Config("asgi_floor:app", host="127.0.0.1", port=args.port, workers=args.workers,
                            access_log=False, log_level="warning", server_header=False, backlog=2048)
    if args.workers > 1:
        Multiprocess(config, sockets=[sock]).run()
    else:
        uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
