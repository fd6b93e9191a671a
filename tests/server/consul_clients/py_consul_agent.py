"""py-consul 1.8.0 registers services through Switchboard's Consul agent API, with the
HTTP, TCP and TTL checks `consul.Check` builds, drives TTL checks and maintenance mode,
reads the agent's services and checks, and deregisters; unknown ids answer as py-consul
expects from Consul (False or None on a 404). What Consul does is in research17 §4-§5.

The HTTP and TCP checks point at small HTTP servers this script serves on 127.0.0.1.
"""

import http.server
import threading

import consul
from consul.exceptions import ConsulException

from common import Checks, client, expect, wait_for

c = client()
checks = Checks()


class Healthy(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"ok"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def serve():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Healthy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server.server_address[1]


# Two ports: Switchboard gives an endpoint (host, port) of a service to its newest
# registration, so api-1 and api-2 must not share one.
PORT, PORT2 = serve(), serve()
URL = f"http://127.0.0.1:{PORT}/health"


def checks_of(service):
    _, found = c.health.checks(service)
    return {check["CheckID"]: check for check in found}


def passing_ids(service):
    _, entries = c.health.service(service, passing=True)
    return sorted(entry["Service"]["ID"] for entry in entries)


def register():
    made = [
        c.agent.service.register("api", service_id="api-1", address="127.0.0.1", port=PORT, tags=["v1"],
                                 meta={"team": "core"}, check=consul.Check.http(URL, "1s", timeout="1s")),
        c.agent.service.register("api", service_id="api-2", address="127.0.0.1", port=PORT2,
                                 check=consul.Check.tcp("127.0.0.1", PORT2, "1s")),
        c.agent.service.register("worker", service_id="worker-1", address="192.0.2.50", port=7000,
                                 check=consul.Check.ttl("30s")),
    ]
    expect(made == [True, True, True], "True from each register (200)", made)


def agent_services():
    services = c.agent.services()
    expect({"api-1", "api-2", "worker-1"} <= set(services), "the three registered ids", services)
    one = services["api-1"]
    expect(one["Service"] == "api" and one["Port"] == PORT and one["Address"] == "127.0.0.1",
           "api-1's Service, Port and Address", one)
    expect(one.get("Tags") == ["v1"] and (one.get("Meta") or {}).get("team") == "core", "api-1's Tags and Meta", one)


def agent_service_definition():
    one = c.agent.service_definition("api-1")
    expect(one and one["ID"] == "api-1" and one["Service"] == "api" and one["Port"] == PORT, "api-1", one)
    expect(c.agent.service_definition("no-such-id") is None, "None (404) for an unknown id",
           c.agent.service_definition("no-such-id"))


def agent_checks():
    found = c.agent.checks()
    for check_id, service_id in [("service:api-1", "api-1"), ("service:api-2", "api-2"),
                                 ("service:worker-1", "worker-1")]:
        expect(check_id in found and found[check_id]["ServiceID"] == service_id,
               f"{check_id} (Consul's default id for a service's one check)", sorted(found))
    types = {check_id: found[check_id].get("Type") for check_id in ("service:api-1", "service:api-2",
                                                                     "service:worker-1")}
    expect(types == {"service:api-1": "http", "service:api-2": "tcp", "service:worker-1": "ttl"},
           "check types http, tcp, ttl", types)


def http_and_tcp_checks_pass():
    wait_for("api-1's HTTP check and api-2's TCP check to pass (?passing lists both)",
             lambda: passing_ids("api"), lambda seen: seen == ["api-1", "api-2"], deadline=15)
    found = checks_of("api")
    for check_id in ("service:api-1", "service:api-2"):
        expect(found[check_id]["Status"] == "passing", f"{check_id} passing", found[check_id])


# The Output each TTL update left, as (update, note, /v1/health/checks, /v1/agent/checks).
TTL_OUTPUTS = []


def ttl_check_updates():
    first = checks_of("worker")["service:worker-1"]
    expect(first["Status"] == "critical", "a TTL check starts critical (Consul's default)", first)
    expect(passing_ids("worker") == [], "worker-1 not passing before its first pass", passing_ids("worker"))
    for update, status in [(c.agent.check.ttl_pass, "passing"), (c.agent.check.ttl_warn, "warning"),
                           (c.agent.check.ttl_fail, "critical"), (c.agent.check.ttl_pass, "passing")]:
        note = f"now {status}"
        expect(update("service:worker-1", notes=note) is True, f"True from {update.__name__}")
        check = wait_for(f"service:worker-1 {status}", lambda: checks_of("worker").get("service:worker-1"),
                         lambda ch: ch and ch["Status"] == status, deadline=5)
        expect(check["Type"] == "ttl", "Type ttl", check)
        local = c.agent.checks().get("service:worker-1", {})
        TTL_OUTPUTS.append((update.__name__, note, check["Output"], local.get("Output")))
        wanted = ["worker-1"] if status == "passing" else []
        expect(passing_ids("worker") == wanted, f"?passing lists {wanted} when {status}", passing_ids("worker"))
    expect(c.agent.check.ttl_pass("no-such-check") is False, "False (404) for an unknown check")
    try:
        c.agent.check.ttl_pass("service:api-1")
    except ConsulException as error:
        expect("does not have associated TTL" in str(error), "500 'does not have associated TTL'", str(error))
    else:
        raise AssertionError("expected ttl_pass of an HTTP check to raise ConsulException (Consul: 500)")


def ttl_notes_are_outputs():
    # Consul: `note` becomes the check's Output; each update above changed the status, so
    # the catalog (/v1/health/checks) has it too, not only /v1/agent/checks.
    expect(TTL_OUTPUTS, "the TTL updates to have run")
    wrong = [entry for entry in TTL_OUTPUTS if entry[2] != entry[1] or entry[3] != entry[1]]
    expect(not wrong, "each note as Output in /v1/health/checks and /v1/agent/checks "
                      "(update, note, health Output, agent Output)", wrong)


def maintenance():
    expect(c.agent.service.maintenance("api-1", True, reason="deploy") is True, "True from enable")
    check = checks_of("api").get("_service_maintenance:api-1")
    expect(check and check["Status"] == "critical" and check["Notes"] == "deploy",
           "a critical _service_maintenance:api-1 check with the reason as Notes", checks_of("api"))
    expect(passing_ids("api") == ["api-2"], "api-1 out of ?passing in maintenance", passing_ids("api"))
    expect(c.agent.service.maintenance("api-1", False) is True, "True from disable")
    expect("_service_maintenance:api-1" not in checks_of("api"), "the maintenance check gone", checks_of("api"))
    expect(passing_ids("api") == ["api-1", "api-2"], "api-1 passing again", passing_ids("api"))
    expect(c.agent.service.maintenance("no-such-id", True) is False, "False (404) for an unknown id")


def deregister():
    expect(c.agent.service.deregister("api-2") is True, "True from deregister")
    expect("api-2" not in c.agent.services(), "api-2 gone from agent.services()", c.agent.services())
    _, nodes = c.catalog.service("api")
    expect([n["ServiceID"] for n in nodes] == ["api-1"], "api-2 gone from the catalog", nodes)
    expect("service:api-2" not in c.agent.checks(), "api-2's check gone", sorted(c.agent.checks()))
    expect(c.agent.service.deregister("no-such-id") is False, "False (404) for an unknown id")


def visible_in_the_catalog():
    _, services = c.catalog.services()
    expect("api" in services and "worker" in services, "agent registrations in the catalog", services)
    _, nodes = c.catalog.service("worker")
    expect(len(nodes) == 1 and nodes[0]["ServiceAddress"] == "192.0.2.50" and nodes[0]["ServicePort"] == 7000,
           "worker-1 at 192.0.2.50:7000", nodes)


for name, check in [
    ("agent.service.register with Check.http, Check.tcp, Check.ttl", register),
    ("agent.services", agent_services),
    ("agent.service_definition (and unknown)", agent_service_definition),
    ("agent.checks", agent_checks),
    ("HTTP and TCP checks pass", http_and_tcp_checks_pass),
    ("agent.check.ttl_pass/ttl_warn/ttl_fail", ttl_check_updates),
    ("a TTL update's note is the check's Output", ttl_notes_are_outputs),
    ("agent.service.maintenance", maintenance),
    ("registrations in the catalog", visible_in_the_catalog),
    ("agent.service.deregister (and unknown)", deregister),
]:
    checks.run(name, check)
checks.report()
