"""A py-consul 1.8.0 blocking reader of `/v1/health/service/<name>`, driven line by line
by the Rust test, which makes the change in some source while this query is parked.

Each line read from stdin is `<service> <host:port>`. The script reads the service once
(the address must not be there yet), prints `{"parked": <index>}`, then sends blocking
queries (`index` = the last X-Consul-Index, `wait=60s`) until an instance at the
address is listed, and prints `{"found": ..., "queries": [...], "index": ...}`: each
query's seconds, so the test sees that the query parked before the change answered
right after it, long before its wait. Exits at the end of stdin.
"""

import json
import sys
import time

from common import client

c = client()


def addresses(entries):
    return sorted(f"{e['Service']['Address']}:{e['Service']['Port']}" for e in entries)


def say(value):
    print(json.dumps(value), flush=True)


for line in sys.stdin:
    service, address = line.split()
    index, entries = c.health.service(service)
    if address in addresses(entries):
        say({"error": f"{address} is listed before the change", "addresses": addresses(entries)})
        continue
    say({"parked": index})
    queries = []
    while address not in addresses(entries):
        started = time.monotonic()
        new_index, entries = c.health.service(service, index=index, wait="60s")
        queries.append({"seconds": round(time.monotonic() - started, 3), "from": index, "to": new_index})
        index = new_index
    say({"found": address, "queries": queries, "index": index, "addresses": addresses(entries)})
