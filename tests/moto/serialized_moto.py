#!/usr/bin/env python3
"""moto_server with DynamoDB requests served one at a time.

Why this exists: moto's DynamoDB is not atomic under concurrency. Measured with
aws-sdk-go-v2 against moto 5.2.1, 64 goroutines doing conditional increments
on a capacity-10 counter read running = 11 back from the server in 3 of 3 runs,
unconditional increments lost updates, and a cancelled TransactWriteItems
restores a deep copy of the table over other clients' commits. Real DynamoDB
is atomic per item and serializable per transaction, and Parkinglot's hard
capacity rests on exactly that. So this launcher holds one lock around every
request whose X-Amz-Target starts with "DynamoDB_" and consumes the whole
response inside the lock. SQS requests (and everything else) stay concurrent,
so SQS long polls do not block DynamoDB traffic.

It builds moto's WSGI app as moto_server does
(moto.moto_server.werkzeug_app.DomainDispatcherApplication(create_backend_app))
and serves it with werkzeug's threaded server: make_server(threaded=True) and
serve_forever(), which is what run_simple(threaded=True) runs when the reloader
is off, used directly so that a port of 0 can be reported back.

Usage: serialized_moto.py [--host 127.0.0.1] [--port 0]
Prints "listening http://HOST:PORT" on stdout once it accepts connections,
and runs until SIGTERM or SIGINT.
"""

import argparse
import signal
import sys
import threading

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import WSGIRequestHandler, make_server


class SerializeDynamoDB:
    """WSGI middleware: one DynamoDB request at a time, response included."""

    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        if not environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB_"):
            return self.app(environ, start_response)
        with self.lock:
            result = self.app(environ, start_response)
            try:
                body = b"".join(result)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
        return [body]


class QuietHandler(WSGIRequestHandler):
    """Drops the per-request access log line; errors are still logged."""

    def log_request(self, code="-", size="-"):
        pass


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()

    app = SerializeDynamoDB(DomainDispatcherApplication(create_backend_app))
    server = make_server(args.host, args.port, app, threaded=True, request_handler=QuietHandler)

    def stop(signum, frame):
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    host, port = server.server_address[:2]
    print(f"listening http://{host}:{port}", flush=True)
    server.serve_forever()
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
