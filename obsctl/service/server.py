"""`obsctl serve`: run the HTTP API and the reconcile loop until SIGTERM/SIGINT."""

from __future__ import annotations

import logging
import signal
from types import FrameType
from typing import TextIO

import uvicorn

from obsctl.config import Settings
from obsctl.service.guard import parse_listen
from obsctl.service.http import create_app
from obsctl.service.logs import configure_logging
from obsctl.service.runtime import Runtime

log = logging.getLogger("obsctl.service")


def serve(settings: Settings, out: TextIO) -> int:
    """Build the runtime, print where everything is, serve until a signal; shut down gracefully.

    uvicorn turns SIGTERM/SIGINT into a graceful exit: it stops accepting connections, finishes
    requests, then runs the lifespan shutdown, which waits for the in-flight reconcile round and
    releases the leader lock.
    """
    configure_logging()
    host, port = parse_listen(settings.serve.listen)
    runtime = Runtime(settings)
    app = create_app(runtime)
    out.write("obsctl serve\n")
    for key, value in runtime.describe().items():
        out.write(f"  {key:8} {value}\n")
    out.flush()
    config = uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False, lifespan="on",
                            timeout_graceful_shutdown=30)
    server = uvicorn.Server(config)
    # uvicorn re-raises the signal after its graceful shutdown; a handled SIGTERM is a clean exit (0)
    received: list[int] = []

    def _after_shutdown(sig: int, _frame: FrameType | None) -> None:
        received.append(sig)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _after_shutdown)
    server.run()
    if received:
        log.info("exiting after %s", signal.Signals(received[0]).name)
    return 0 if server.started else 1
