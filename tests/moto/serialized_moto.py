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

A second fix, for speed only: moto's TransactWriteItems deep-copies every
table it names before each transaction, to restore on cancel, which makes a
transition cost O(table size) (about 1 lifecycle/s once a table holds 2,000
tasks). With DynamoDB requests serialized, restoring just the items the
transaction names is equivalent: cheap_transaction_rollback() makes that
copy a no-op for tables and puts the named items back itself on failure.

A third, for retries: moto ignores TransactWriteItems' ClientRequestToken.
When a response is lost after moto applied a transaction (a slow response
under load, a reset connection), the SDK retries with the same token, and
moto applies it again: the retry fails its own conditions and the client
sees a conflict for a write that succeeded. Real DynamoDB answers such a
retry (within 10 minutes) with the first call's success; so does this
launcher, from a cache of successful responses by token.

Usage: serialized_moto.py [--host 127.0.0.1] [--port 0]
Prints "listening http://HOST:PORT" on stdout once it accepts connections,
and runs until SIGTERM or SIGINT.
"""

import argparse
import io
import json
import signal
import sys
import threading
import time

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import WSGIRequestHandler, make_server


class SerializeDynamoDB:
    """WSGI middleware: one DynamoDB request at a time, response included."""

    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()
        self.by_token = {}  # ClientRequestToken -> (time, status, headers, body)

    def __call__(self, environ, start_response):
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if not target.startswith("DynamoDB_"):
            return self.app(environ, start_response)
        token = None
        if target.endswith(".TransactWriteItems"):
            length = int(environ.get("CONTENT_LENGTH") or 0)
            raw = environ["wsgi.input"].read(length)
            environ["wsgi.input"] = io.BytesIO(raw)
            try:
                token = json.loads(raw).get("ClientRequestToken")
            except ValueError:
                token = None
        with self.lock:
            now = time.monotonic()
            for t, (at, *_rest) in list(self.by_token.items()):
                if now - at > 600:
                    del self.by_token[t]
            if token and token in self.by_token:
                _, status, headers, body = self.by_token[token]
                start_response(status, headers)
                return [body]
            captured = {}

            def capture(status, headers, exc_info=None):
                captured["status"], captured["headers"] = status, headers
                return start_response(status, headers, exc_info)

            result = self.app(environ, capture)
            try:
                body = b"".join(result)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
            if token and captured.get("status", "").startswith("200"):
                self.by_token[token] = (now, captured["status"], list(captured["headers"]), body)
        return [body]


def cheap_transaction_rollback():
    """Back up only the items a transaction names, not whole tables.

    Valid only while DynamoDB requests are serialized (SerializeDynamoDB):
    then nothing else changes the table between the backup and the restore.
    """
    import copy

    import moto.dynamodb.models as models
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.table import Table

    real_deepcopy = copy.deepcopy

    class TablesByReference:
        """The module's `copy`, except that a Table is not copied."""

        @staticmethod
        def deepcopy(x, memo=None):
            if isinstance(x, Table):
                return x
            return real_deepcopy(x, memo)

    models.copy = TablesByReference
    transact = DynamoDBBackend.transact_write_items

    def transact_write_items(self, transact_items):
        saved = []
        for entry in transact_items:
            try:
                _, op = next(iter(entry.items()))
                name = op["TableName"]
                table = self.get_table(name)
                if "Item" in op:
                    key = {table.hash_key_attr: op["Item"][table.hash_key_attr]}
                    if table.range_key_attr is not None:
                        key[table.range_key_attr] = op["Item"][table.range_key_attr]
                else:
                    key = op["Key"]
                item = self.get_item(name, key)
                saved.append((name, key, None if item is None else real_deepcopy(item.to_json()["Attributes"])))
            except Exception:  # a malformed entry: moto reports it itself
                pass
        try:
            return transact(self, transact_items)
        except Exception:
            for name, key, attrs in reversed(saved):
                if attrs is None:
                    try:
                        self.delete_item(name, key)
                    except Exception:
                        pass
                else:
                    self.put_item(name, attrs)
            raise

    DynamoDBBackend.transact_write_items = transact_write_items


class QuietHandler(WSGIRequestHandler):
    """Drops the per-request access log line; errors are still logged."""

    def log_request(self, code="-", size="-"):
        pass


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()

    cheap_transaction_rollback()
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
