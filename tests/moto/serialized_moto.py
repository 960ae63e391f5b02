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

A fourth, for speed only: moto's Query lists and sorts every item of the
table on every call (Table.all_items), and for an index tests every item
against the key condition, then computes the size of every item it passes
on its way to the Limit. Profiled under the AWS load test (400 tasks,
PARKINGLOT_MOTO_PROFILE), Query took 80% of moto's time, 157 ms a call, and
the run managed about one lifecycle per second. partition_queries() hands
moto's own query code a shorter list in place of all_items(): the items of
the partition queried (the base table's items of the hash key, or, for a
global secondary index, the items whose index hash attributes equal the
queried ones, from a map that every item write keeps current), already in
moto's sort order, and, when there is a sort-key condition, only the items
that pass moto's own test of it plus each one's neighbours in that order
(moto answers a LastEvaluatedKey when any item follows the one that reached
the Limit). moto's code then runs unchanged on that list: its sort, the
sort-key condition, ScanIndexForward, Limit and LastEvaluatedKey, the
filter and the projections. The one difference: moto's 1 MB page limit no
longer counts items the key condition excludes (DynamoDB does not either).
Setting PARKINGLOT_MOTO_CHECK=1 runs every Query also through
moto's original code and fails the request, with "partition query
mismatch" on stderr, if the answers differ (items, count, last key);
internal/mototest's TestPartitionQueries runs so.

A fifth, for speed only: moto's response serializer looks up each of the
ten members of every AttributeValue through up to six alias providers,
about a quarter of its time under the load test; plain_attribute_values()
writes a plain one (S, N, SS, NS, or an M or L of those) as itself. Under
PARKINGLOT_MOTO_CHECK=1 moto's serializer runs too and a difference fails
the request ("plain attribute value mismatch").

A sixth, for speed only: moto finds the backend of every request by listing
its own package directory and matching about a thousand URL patterns
(DomainDispatcherApplication.get_backend_for_host), about 17% of its time
under load; memoized_dispatch() keeps the answer per host name, on which
alone it depends.

PARKINGLOT_MOTO_PROFILE=PREFIX profiles the serialized DynamoDB requests
(cProfile, and time by X-Amz-Target) into PREFIX.pstats and PREFIX.txt when
the launcher stops.

Usage: serialized_moto.py [--host 127.0.0.1] [--port 0]
Prints "listening http://HOST:PORT" on stdout once it accepts connections,
and runs until SIGTERM or SIGINT.
"""

import argparse
import cProfile
import io
import json
import os
import pstats
import signal
import sys
import threading
import time

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import WSGIRequestHandler, make_server


class SerializeDynamoDB:
    """WSGI middleware: one DynamoDB request at a time, response included."""

    def __init__(self, app, profile=None):
        self.app = app
        self.lock = threading.Lock()
        self.by_token = {}  # ClientRequestToken -> (time, status, headers, body)
        self.profile = profile  # a Profile, when PARKINGLOT_MOTO_PROFILE is set

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

            if self.profile is not None:
                self.profile.begin(target)
            result = self.app(environ, capture)
            try:
                body = b"".join(result)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
                if self.profile is not None:
                    self.profile.end()
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


def memoized_dispatch():
    """Find the backend of a host once, not on every request.

    moto's DomainDispatcherApplication.get_backend_for_host lists moto's
    package directory (os.listdir, then os.path.isdir for each of its ~150
    entries) and matches ~1,000 URL patterns for every request; its answer
    depends on the host name alone (SigV4 service and region), so it is
    kept per host.
    """
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    real = DomainDispatcherApplication.get_backend_for_host
    memo = {}
    lock = threading.Lock()

    def get_backend_for_host(self, host):
        with lock:
            if host not in memo:
                memo[host] = real(self, host)
            return memo[host]

    DomainDispatcherApplication.get_backend_for_host = get_backend_for_host


def plain_attribute_values(check=False):
    """Serialize plain AttributeValues without moto's generic serializer.

    moto writes every response through a serializer that walks the botocore
    shape of the operation and, for every member of every structure, tries
    up to six alias providers to find its value: an AttributeValue costs ten
    such look-ups, one per member it might have. That was about a quarter of
    moto's time under the load test. An AttributeValue that is a dict of one
    S, N, SS or NS value, or an M or L of such values, serializes to itself;
    this writes it so and leaves every other value to moto's code.
    """
    from moto.core.serialize import BaseJSONSerializer

    real = BaseJSONSerializer._serialize_type_structure

    def plain(v):
        if type(v) is not dict or len(v) != 1:
            return None
        ((t, x),) = v.items()
        if t in ("S", "N") and type(x) is str:
            return {t: x}
        if t in ("SS", "NS") and type(x) is list and all(type(e) is str for e in x):
            return {t: list(x)}
        if t == "M" and type(x) is dict:
            out = {}
            for k, e in x.items():
                p = plain(e)
                if p is None or type(k) is not str:
                    return None
                out[k] = p
            return {t: out}
        if t == "L" and type(x) is list:
            out = []
            for e in x:
                p = plain(e)
                if p is None:
                    return None
                out.append(p)
            return {t: out}
        return None

    def _serialize_type_structure(self, serialized, value, shape, key):
        p = plain(value) if key and shape.name == "AttributeValue" else None
        if p is None:
            return real(self, serialized, value, shape, key)
        if check:
            want = {}
            real(self, want, value, shape, key)
            got = {}
            self._default_serialize(got, p, shape, key)
            if json.dumps(got) != json.dumps(want):
                msg = f"plain attribute value mismatch: got {got!r}, moto {want!r}"
                print(msg, file=sys.stderr, flush=True)
                raise RuntimeError(msg)
        self._default_serialize(serialized, p, shape, key)

    BaseJSONSerializer._serialize_type_structure = _serialize_type_structure


def partition_queries(check=False):
    """Make a Query read the partition it names, not the whole table.

    moto's Table.query starts from Table.all_items(), which lists and sorts
    every item of the table, and for an index also tests every item against
    the key condition: each Query costs O(n log n) in the table's size, and
    the sweeper queries its indexes about 20 times a run. Here all_items()
    returns, for the duration of one query, only the items that can match:
    the base table's partition of the queried hash key (a dict lookup), or,
    for a global secondary index, the items whose index hash attributes
    equal the queried ones, from a map kept per table. Everything else in
    moto's query runs unchanged on that list: its sort, range-key
    conditions, ScanIndexForward, Limit and LastEvaluatedKey, the filter and
    the projections; the list only has to hold every item that can match,
    and moto's own tests then pick the matches.

    The map (index name -> hash attribute values -> primary keys) is built
    on the table's first index query and kept current by re-reading the
    item of every key written: Table.put_item and Table.delete_item (through
    which PutItem, BatchWriteItem, TransactWriteItems, PartiQL and imports
    write) and DynamoDBBackend.update_item (which changes an item in place).
    It is rebuilt when the table's indexes change. A query this cannot serve
    (no hash condition on every hash attribute of the index) runs moto's
    original code.

    With check=True (PARKINGLOT_MOTO_CHECK=1) every Query also runs
    moto's original code and fails with "partition query mismatch" on stderr
    if the answers differ.
    """
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.table import Table

    local = threading.local()
    real_all_items = Table.all_items
    real_query = Table.query
    real_put = Table.put_item
    real_delete = Table.delete_item
    real_update = DynamoDBBackend.update_item

    def all_items(self):
        only = getattr(local, "only", None)
        if only is not None and only[0] is self:
            return list(only[1])
        return real_all_items(self)

    def item_at(table, pk):
        hash_set = table.items.get(pk[0])
        if hash_set is None:
            return None
        if table.range_key_attr:
            return hash_set.get(pk[1])
        return hash_set

    def hashed_indexes(table):
        """(name, hash attributes) of the indexes not keyed by the table's
        own hash key (those are served by the base partition)."""
        out = []
        for index in table.all_indexes():
            attrs = tuple(k["AttributeName"] for k in index.schema if k["KeyType"] == "HASH")
            if attrs and attrs != (table.hash_key_attr,):
                out.append((index.name, attrs))
        return tuple(out)

    class IndexMap:
        def __init__(self, table):
            self.signature = hashed_indexes(table)
            self.by_index = {name: {} for name, _ in self.signature}
            self.by_key = {}  # pk -> [(index name, hash values)]
            for item in real_all_items(table):
                self.add(item)

        def add(self, item):
            pk = (item.hash_key, item.range_key)
            entries = []
            for name, attrs in self.signature:
                values = tuple(item.attrs.get(a) for a in attrs)
                if any(v is None for v in values):
                    continue
                self.by_index[name].setdefault(values, set()).add(pk)
                entries.append((name, values))
            if entries:
                self.by_key[pk] = entries

        def remove(self, pk):
            for name, values in self.by_key.pop(pk, ()):
                bucket = self.by_index[name].get(values)
                if bucket is not None:
                    bucket.discard(pk)
                    if not bucket:
                        del self.by_index[name][values]

    def reindex(table, pk):
        index_map = table.__dict__.get("_partition_index")
        if index_map is None:
            return
        index_map.remove(pk)
        item = item_at(table, pk)
        if item is not None:
            index_map.add(item)

    def index_map_of(table):
        index_map = table.__dict__.get("_partition_index")
        if index_map is None or index_map.signature != hashed_indexes(table):
            index_map = IndexMap(table)
            table.__dict__["_partition_index"] = index_map
        return index_map

    def put_item(self, item_attrs, *args, **kwargs):
        try:
            return real_put(self, item_attrs, *args, **kwargs)
        finally:
            try:
                from moto.dynamodb.models.dynamo_type import DynamoType

                h = DynamoType(item_attrs[self.hash_key_attr])
                r = DynamoType(item_attrs[self.range_key_attr]) if self.range_key_attr else None
                reindex(self, (h, r))
            except Exception:
                self.__dict__.pop("_partition_index", None)

    def delete_item(self, hash_key, range_key, *args, **kwargs):
        try:
            return real_delete(self, hash_key, range_key, *args, **kwargs)
        finally:
            reindex(self, (hash_key, range_key if self.range_key_attr else None))

    def update_item(self, table_name, key, *args, **kwargs):
        try:
            return real_update(self, table_name, key, *args, **kwargs)
        finally:
            try:
                from moto.dynamodb.models.dynamo_type import DynamoType

                table = self.tables.get(table_name)
                if table is not None:
                    try:
                        h = DynamoType(key[table.hash_key_attr])
                        r = DynamoType(key[table.range_key_attr]) if table.range_key_attr else None
                        reindex(table, (h, r))
                    except Exception:
                        table.__dict__.pop("_partition_index", None)
            except Exception:
                pass

    def partition(table, hash_key, index_name, hash_key_conditions):
        """The items of the partition a query names, and the attributes moto
        sorts them by, or None to run moto's code as is."""
        table_keys = [table.hash_key_attr] + ([table.range_key_attr] if table.range_key_attr else [])
        if not index_name:
            if hash_key is None:
                return None
            hash_set = table.items.get(hash_key)
            items = [] if hash_set is None else list(hash_set.values()) if table.range_key_attr else [hash_set]
            return items, table_keys[1:], None
        index = next((i for i in table.all_indexes() if i.name == index_name), None)
        if index is None:
            return None
        attrs = tuple(k["AttributeName"] for k in index.schema if k["KeyType"] == "HASH")
        ranges = [k["AttributeName"] for k in index.schema if k["KeyType"] == "RANGE"]
        conds = dict(hash_key_conditions or [])
        if not attrs or set(conds) != set(attrs):
            return None
        if attrs == (table.hash_key_attr,):
            hash_set = table.items.get(conds[table.hash_key_attr])
            items = [] if hash_set is None else list(hash_set.values()) if table.range_key_attr else [hash_set]
        else:
            keys = index_map_of(table).by_index.get(index_name, {}).get(tuple(conds[a] for a in attrs), ())
            items = [it for it in (item_at(table, pk) for pk in keys) if it is not None]
        order = [a for a in list(attrs) + ranges + table_keys if a]
        return items, list(dict.fromkeys(order)), (ranges[0] if ranges else None)

    def candidates(table, hash_key, index_name, hash_key_conditions, range_comparison, range_objs, range_key_conditions):
        """The items a query can match, in moto's order, or None to run
        moto's code as is."""
        found = partition(table, hash_key, index_name, hash_key_conditions)
        if found is None:
            return None
        items, order, index_range = found
        try:
            # Sorted already, moto's own sort of the list costs n - 1
            # comparisons.
            items.sort(key=lambda it: tuple(it.attrs[a].cast_value for a in order))
        except Exception:
            return items  # unsortable here: moto's code does the rest
        if range_comparison:
            # moto's own test of the last sort-key condition (Table.query).
            attr = range_key_conditions[-1][0] if range_key_conditions else (index_range if index_name else None)
            if attr:
                match = [bool(it.attrs.get(attr) and it.attrs.get(attr).compare(range_comparison, range_objs)) for it in items]
            elif not index_name:
                match = [bool(it.range_key.compare(range_comparison, range_objs)) for it in items]
            else:
                return items
            # Keep the matches and their neighbours: moto's loop answers a
            # LastEvaluatedKey when any item follows the one that reached
            # the Limit, matching or not.
            n = len(items)
            items = [it for i, it in enumerate(items) if match[i] or (i > 0 and match[i - 1]) or (i + 1 < n and match[i + 1])]
        return items

    def answer(result):
        items, scanned, last = result
        return ([i.to_json() for i in items], scanned, last)

    def query(self, hash_key, range_comparison, range_objs, limit, exclusive_start_key, scan_index_forward,
              projection_expressions, index_name=None, consistent_read=False, filter_expression=None,
              hash_key_conditions=None, range_key_conditions=None, **filter_kwargs):
        args = (hash_key, range_comparison, range_objs, limit, exclusive_start_key, scan_index_forward,
                projection_expressions, index_name, consistent_read, filter_expression)
        kwargs = dict(filter_kwargs, hash_key_conditions=hash_key_conditions, range_key_conditions=range_key_conditions)
        try:
            only = candidates(self, hash_key, index_name, hash_key_conditions, range_comparison, range_objs, range_key_conditions)
        except Exception:
            only = None
        if only is None:
            return real_query(self, *args, **kwargs)
        local.only = (self, only)
        try:
            result = real_query(self, *args, **kwargs)
        finally:
            local.only = None
        if check:
            want = real_query(self, *args, **kwargs)
            if answer(result) != answer(want):
                msg = f"partition query mismatch on {self.name} index {index_name}: got {answer(result)!r}, moto {answer(want)!r}"
                print(msg, file=sys.stderr, flush=True)
                raise RuntimeError(msg)
        return result

    Table.all_items = all_items
    Table.query = query
    Table.put_item = put_item
    Table.delete_item = delete_item
    DynamoDBBackend.update_item = update_item


class Profile:
    """Where moto spends its time: a cProfile of the serialized DynamoDB
    requests, and their count, total, mean and max time by X-Amz-Target.
    Enabled by PARKINGLOT_MOTO_PROFILE=PREFIX; written to PREFIX.pstats and
    PREFIX.txt when the launcher stops."""

    def __init__(self, prefix):
        self.prefix = prefix
        self.prof = cProfile.Profile()
        self.by_target = {}  # target -> [count, total seconds, max seconds]
        self.started = time.monotonic()
        self.current = None

    def begin(self, target):
        self.current = (target, time.monotonic())
        self.prof.enable()

    def end(self):
        self.prof.disable()
        target, t0 = self.current
        d = time.monotonic() - t0
        st = self.by_target.setdefault(target, [0, 0.0, 0.0])
        st[0] += 1
        st[1] += d
        st[2] = max(st[2], d)

    def write(self):
        self.prof.dump_stats(self.prefix + ".pstats")
        wall = time.monotonic() - self.started
        busy = sum(st[1] for st in self.by_target.values())
        with open(self.prefix + ".txt", "w") as f:
            f.write(f"wall {wall:.1f}s, DynamoDB busy {busy:.1f}s ({100 * busy / max(wall, 1e-9):.0f}%)\n")
            f.write(f"{'target':<40} {'count':>8} {'total s':>9} {'mean ms':>9} {'max ms':>9}\n")
            for target, (n, total, mx) in sorted(self.by_target.items(), key=lambda kv: -kv[1][1]):
                f.write(f"{target:<40} {n:>8} {total:>9.2f} {1000 * total / n:>9.2f} {1000 * mx:>9.1f}\n")
            f.write("\n")
            pstats.Stats(self.prof, stream=f).sort_stats("cumulative").print_stats(40)


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
    memoized_dispatch()
    check = os.environ.get("PARKINGLOT_MOTO_CHECK") == "1"
    partition_queries(check)
    plain_attribute_values(check)
    prefix = os.environ.get("PARKINGLOT_MOTO_PROFILE")
    profile = Profile(prefix) if prefix else None
    app = SerializeDynamoDB(DomainDispatcherApplication(create_backend_app), profile)
    server = make_server(args.host, args.port, app, threaded=True, request_handler=QuietHandler)

    def stop(signum, frame):
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    host, port = server.server_address[:2]
    print(f"listening http://{host}:{port}", flush=True)
    server.serve_forever()
    server.server_close()
    if profile is not None:
        with app.lock:
            profile.write()
    return 0


if __name__ == "__main__":
    sys.exit(main())
