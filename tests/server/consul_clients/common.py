"""What the py-consul scripts share: a client pointed at the Switchboard under test,
a record of the last HTTP exchange (for failure messages), and named checks that run
one after another, so one run reports every difference at once.

The Rust test that runs a script sets:
  SB_CONSUL  host:port of Switchboard's Consul API
  SB_BASE    http://host:port of its native API (for seeding and metrics)
and reads the one JSON line the script prints last:
  {"passed": [names], "failed": [{"check", "error", "last_exchange"}], ...}
The script exits 1 when a check failed.
"""

import json
import os
import sys
import time
import traceback
import urllib.request

import consul

SB_CONSUL = os.environ["SB_CONSUL"]
SB_BASE = os.environ["SB_BASE"]

# The last request py-consul sent and what came back, across every client made here.
LAST = {"exchange": None}


def _remember(response, *args, **kwargs):
    request = response.request
    body = response.text if len(response.text) <= 600 else response.text[:600] + "..."
    LAST["exchange"] = (
        f"{request.method} {request.url} -> {response.status_code} "
        f"X-Consul-Index={response.headers.get('X-Consul-Index')} body={body!r}"
    )


def client(token=None):
    """A py-consul client of the server under test (keywords only: the positional
    order is host, port, token, scheme)."""
    host, port = SB_CONSUL.rsplit(":", 1)
    made = consul.Consul(host=host, port=int(port), token=token)
    made.http.session.hooks["response"].append(_remember)
    return made


def expect(condition, what, got=None):
    if not condition:
        raise AssertionError(f"expected {what}; got {got!r}")


def expect_index(index, what):
    """py-consul hands back X-Consul-Index as the raw header string; Consul never sends
    0 (a blocking client would spin)."""
    expect(isinstance(index, str) and index.isdigit() and int(index) >= 1,
           f"X-Consul-Index of {what} to be an integer >= 1", index)
    return int(index)


def raises(exception, call, what):
    """Runs `call`, which must raise `exception`; returns it."""
    try:
        result = call()
    except exception as raised:
        return raised
    raise AssertionError(f"expected {what} to raise {exception.__name__}; it returned {result!r}")


def native(method, path, body=None, token=None):
    """A call to Switchboard's native API: (status, parsed JSON or text)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(SB_BASE + path, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, text = response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        status, text = error.code, error.read().decode()
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


def blocking_waiting():
    """Switchboard's gauge of blocking queries parked right now."""
    with urllib.request.urlopen(SB_BASE + "/metrics", timeout=10) as response:
        for line in response.read().decode().splitlines():
            if line.startswith("switchboard_blocking_queries_waiting "):
                return float(line.split()[1])
    return 0.0


def wait_for(what, probe, accept=bool, deadline=10.0):
    """Polls `probe` until `accept` takes what it returns (returned), failing with
    `what` and the last value seen after `deadline` seconds."""
    give_up = time.monotonic() + deadline
    while True:
        seen = probe()
        if accept(seen):
            return seen
        if time.monotonic() > give_up:
            raise AssertionError(f"timed out after {deadline}s waiting for {what}; last seen {seen!r}")
        time.sleep(0.05)


class Checks:
    def __init__(self):
        self.passed = []
        self.failed = []
        self.notes = {}

    def run(self, name, check):
        LAST["exchange"] = None
        try:
            check()
        except Exception as error:  # a failure of one check must not hide the others
            # The innermost line of these scripts, not of py-consul's internals.
            here = os.path.dirname(os.path.abspath(__file__))
            ours = [f for f in traceback.extract_tb(error.__traceback__)
                    if os.path.dirname(os.path.abspath(f.filename)) == here]
            # Prefer the script's own line over the helper that raised.
            ours = [f for f in ours if os.path.basename(f.filename) != "common.py"] or ours
            line = f"{os.path.basename(ours[-1].filename)}:{ours[-1].lineno}" if ours else None
            self.failed.append({
                "check": name,
                "error": f"{type(error).__name__}: {error}",
                "at_line": line,
                "last_exchange": LAST["exchange"],
            })
        else:
            self.passed.append(name)

    def note(self, key, value):
        self.notes[key] = value

    def report(self):
        print(json.dumps({"passed": self.passed, "failed": self.failed, "notes": self.notes}), flush=True)
        sys.exit(1 if self.failed else 0)
