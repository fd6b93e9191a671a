"""py-consul 1.8.0 reads every catalog, health, status and agent-info route of
Switchboard's Consul API, with blocking queries and the errors py-consul surfaces.

Seeds native instances through Switchboard's own API, then reads them as a Consul
client. What Consul does is in research17 §1-§3 and §5; how Switchboard maps onto it:
the default namespace and group keep plain names, another group reads `<group>@@<name>`,
an instance's node is its host, the datacenter is dc1, and an inactive instance has a
critical check.
"""

import threading
import time

import consul
from consul.exceptions import BadRequest

from common import Checks, blocking_waiting, client, expect, expect_index, native, raises, wait_for

c = client()
checks = Checks()

WEB = {
    "web-1": {"host": "192.0.2.10", "port": 8080, "tags": ["v1", "blue"], "metadata": {"version": "1.2"}},
    "web-2": {"host": "192.0.2.11", "port": 8081, "tags": ["v2"]},
    "web-3": {"host": "192.0.2.12", "port": 8082, "tags": ["v1"], "status": "inactive"},
}
SEED = [dict(id=id, service="web", ttl_seconds=86400, **fields) for id, fields in WEB.items()] + [
    {"id": "db-1", "service": "db", "host": "192.0.2.20", "port": 5432, "ttl_seconds": 86400},
    {"id": "pay-1", "service": "pay", "group": "billing", "host": "192.0.2.30", "port": 9000,
     "ttl_seconds": 86400},
]
for body in SEED:
    status, reply = native("POST", "/api/v1/instances", body)
    if status not in (200, 201):
        raise SystemExit(f"seeding {body} through /api/v1/instances failed: {status} {reply}")


def ids(entries, key):
    return sorted(key(entry) for entry in entries)


def by_service_id(entries):
    return {entry["Service"]["ID"]: entry for entry in entries}


def catalog_services():
    index, services = c.catalog.services()
    expect_index(index, "/v1/catalog/services")
    for name in ("web", "db", "billing@@pay"):
        expect(name in services, f"service {name!r} listed", services)
    expect(sorted(services["web"]) == ["blue", "v1", "v2"], "web's tags, each once", services["web"])
    expect(services["db"] == [], "no tags for db as []", services["db"])


def catalog_service():
    index, nodes = c.catalog.service("web")
    expect_index(index, "/v1/catalog/service/web")
    expect(ids(nodes, lambda n: n["ServiceID"]) == ["web-1", "web-2", "web-3"],
           "every web instance, healthy or not", nodes)
    one = next(n for n in nodes if n["ServiceID"] == "web-1")
    expected = {
        "ServiceName": "web", "ServiceAddress": "192.0.2.10", "ServicePort": 8080,
        "Node": "192.0.2.10", "Address": "192.0.2.10", "Datacenter": "dc1",
    }
    for key, value in expected.items():
        expect(one.get(key) == value, f"{key} == {value!r} for web-1", one)
    expect(sorted(one["ServiceTags"]) == ["blue", "v1"], "web-1's tags", one)
    expect((one.get("ServiceMeta") or {}).get("version") == "1.2", "web-1's metadata in ServiceMeta", one)

    _, tagged = c.catalog.service("web", tag="v1")
    expect(ids(tagged, lambda n: n["ServiceID"]) == ["web-1", "web-3"], "?tag=v1 keeps web-1 and web-3", tagged)
    index, unknown = c.catalog.service("no-such-service")
    expect_index(index, "/v1/catalog/service/no-such-service")
    expect(unknown == [], "200 [] for an unknown service", unknown)
    _, grouped = c.catalog.service("billing@@pay")
    expect(ids(grouped, lambda n: n["ServiceID"]) == ["pay-1"], "the billing group's pay as billing@@pay", grouped)


def health_service():
    index, entries = c.health.service("web")
    expect_index(index, "/v1/health/service/web")
    expect(ids(entries, lambda e: e["Service"]["ID"]) == ["web-1", "web-2", "web-3"],
           "every web instance without ?passing", entries)
    for entry in entries:
        expect({"Node", "Service", "Checks"} <= set(entry), "{Node, Service, Checks} entries", entry)
        for check in entry["Checks"]:
            expect(check["Status"] in ("passing", "warning", "critical"), "a Consul check status", check)
    found = by_service_id(entries)
    one = found["web-1"]
    expect(one["Service"]["Service"] == "web" and one["Service"]["Port"] == 8080
           and one["Service"]["Address"] == "192.0.2.10", "web-1's Service", one["Service"])
    expect(one["Node"]["Node"] == "192.0.2.10" and one["Node"]["Datacenter"] == "dc1", "web-1's Node", one["Node"])
    expect(all(ch["Status"] == "passing" for ch in one["Checks"]), "web-1's checks all passing", one["Checks"])
    expect(any(ch["Status"] == "critical" for ch in found["web-3"]["Checks"]),
           "a critical check on inactive web-3", found["web-3"]["Checks"])

    _, passing = c.health.service("web", passing=True)
    expect(ids(passing, lambda e: e["Service"]["ID"]) == ["web-1", "web-2"], "?passing drops web-3", passing)
    _, both = c.health.service("web", tag=["v1", "blue"])
    expect(ids(both, lambda e: e["Service"]["ID"]) == ["web-1"], "tag=v1&tag=blue: web-1 only", both)
    _, none = c.health.service("web", tag=["v1", "v2"])
    expect(none == [], "tag=v1&tag=v2: nobody has both", none)
    _, unknown = c.health.service("no-such-service")
    expect(unknown == [], "200 [] for an unknown service", unknown)


def same_order_in_catalog_and_health():
    # Traefik v2 pairs /v1/catalog/service and /v1/health/service entries by position.
    _, nodes = c.catalog.service("web")
    _, entries = c.health.service("web")
    expect([n["ServiceID"] for n in nodes] == [e["Service"]["ID"] for e in entries],
           "catalog and health list instances in the same order",
           ([n["ServiceID"] for n in nodes], [e["Service"]["ID"] for e in entries]))


def health_checks():
    index, found = c.health.checks("web")
    expect_index(index, "/v1/health/checks/web")
    expect(found and all(ch["ServiceName"] == "web" for ch in found), "only web's checks", found)
    expect({ch["ServiceID"] for ch in found} == set(WEB), "checks of every web instance", found)
    expect(all(ch["Status"] == "passing" for ch in found if ch["ServiceID"] == "web-1"), "web-1 passing", found)
    expect(any(ch["Status"] == "critical" for ch in found if ch["ServiceID"] == "web-3"), "web-3 critical", found)
    _, unknown = c.health.checks("no-such-service")
    expect(unknown == [], "200 [] for an unknown service", unknown)


def health_state():
    index, critical = c.health.state("critical")
    expect_index(index, "/v1/health/state/critical")
    expect(all(ch["Status"] == "critical" for ch in critical), "only critical checks", critical)
    expect(any(ch["ServiceID"] == "web-3" for ch in critical), "web-3's critical check", critical)
    expect(not any(ch["ServiceID"] == "web-1" for ch in critical), "nothing of web-1", critical)
    _, passing = c.health.state("passing")
    expect(all(ch["Status"] == "passing" for ch in passing), "only passing checks", passing)
    expect(any(ch["ServiceID"] == "web-1" for ch in passing), "web-1's passing check", passing)
    _, every = c.health.state("any")
    expect({"web-1", "web-3", "db-1"} <= {ch["ServiceID"] for ch in every}, "every instance's checks", every)


HOSTS = {"192.0.2.10", "192.0.2.11", "192.0.2.12", "192.0.2.20", "192.0.2.30"}


def catalog_nodes():
    index, nodes = c.catalog.nodes()
    expect_index(index, "/v1/catalog/nodes")
    expect(HOSTS <= {n["Node"] for n in nodes}, "a node per instance host", nodes)
    for node in nodes:
        expect(node.get("Datacenter") == "dc1" and node.get("Address"), "Datacenter dc1 and an Address", node)


def catalog_node():
    index, node = c.catalog.node("192.0.2.10")
    expect_index(index, "/v1/catalog/node/192.0.2.10")
    expect(node and node["Node"]["Node"] == "192.0.2.10", "the node 192.0.2.10", node)
    service = node["Services"].get("web-1")
    expect(service and service["Service"] == "web" and service["Port"] == 8080,
           "web-1 among the node's Services", node["Services"])
    index, unknown = c.catalog.node("no-such-node")
    expect_index(index, "/v1/catalog/node/no-such-node")
    expect(unknown is None, "None (Consul: 200 null) for an unknown node", unknown)


def datacenters():
    expect(c.catalog.datacenters() == ["dc1"], "['dc1']", c.catalog.datacenters())


def status():
    leader = c.status.leader()
    expect(isinstance(leader, str) and ":" in leader, "a host:port leader", leader)
    peers = c.status.peers()
    expect(isinstance(peers, list) and leader in peers, "the leader among the peers", peers)


def agent_self():
    info = c.agent.self()
    expect(info["Config"]["Datacenter"] == "dc1", "Config.Datacenter dc1", info.get("Config"))
    expect(isinstance(info["Config"]["NodeName"], str) and info["Config"]["NodeName"], "a Config.NodeName", info)
    expect(isinstance(info.get("Member"), dict) and info["Member"].get("Name"), "a Member with a Name", info)


def agent_members():
    members = c.agent.members()
    expect(isinstance(members, list) and members, "at least one member", members)
    for member in members:
        expect(member.get("Name") and member.get("Addr") and member.get("Status") == 1,
               "Name, Addr and Status 1 (alive)", member)


def blocking_times_out_unchanged():
    index, before = c.health.service("db")
    started = time.monotonic()
    again, after = c.health.service("db", index=index, wait="1s")
    took = time.monotonic() - started
    checks.note("unchanged_wait_1s_took", round(took, 3))
    expect(0.9 <= took < 5, "a return after the 1s wait (plus at most 1/16 jitter)", took)
    expect(again == index and after == before, "the same index and result when nothing changed",
           (index, again))


def park_and_change(read, change, what):
    """Parks `read(index)` in a thread, makes `change()` once the server counts it
    parked, and returns (seconds from the change to the answer, the answer)."""
    answer = {}

    def blocked():
        try:
            answer["value"] = read()
        except Exception as error:
            answer["error"] = error
        answer["at"] = time.monotonic()

    thread = threading.Thread(target=blocked, daemon=True)
    thread.start()
    # The change comes only once the server counts the query as parked.
    wait_for(f"{what} to park", blocking_waiting, accept=lambda waiting: waiting >= 1, deadline=5)
    changed_at = time.monotonic()
    change()
    thread.join(15)
    expect(not thread.is_alive(), f"the parked {what} to answer within 15s of the change (wait is 30s)")
    if "error" in answer:
        raise answer["error"]
    return answer["at"] - changed_at, answer["value"]


def blocking_wakes_on_a_change():
    index, _ = c.health.service("web")
    waiter = client()

    def register():
        body = {"id": "web-4", "service": "web", "host": "192.0.2.13", "port": 8083, "ttl_seconds": 86400}
        status, reply = native("POST", "/api/v1/instances", body)
        expect(status in (200, 201), "registering web-4", reply)

    took, (new_index, entries) = park_and_change(
        lambda: waiter.health.service("web", index=index, wait="30s"), register, "health_service")
    checks.note("health_service_woke_after", round(took, 3))
    expect(int(new_index) > int(index), "a larger X-Consul-Index after the change", (index, new_index))
    expect("web-4" in by_service_id(entries), "the new instance in the answer", entries)
    expect(took < 5, "the answer right after the change, well before the 30s wait", took)

    index, _ = c.catalog.services()

    def register_new_service():
        body = {"id": "cache-1", "service": "cache", "host": "192.0.2.40", "port": 6379, "ttl_seconds": 86400}
        status, reply = native("POST", "/api/v1/instances", body)
        expect(status in (200, 201), "registering cache-1", reply)

    took, (new_index, services) = park_and_change(
        lambda: waiter.catalog.services(index=index, wait="30s"), register_new_service, "catalog_services")
    checks.note("catalog_services_woke_after", round(took, 3))
    expect(int(new_index) > int(index) and "cache" in services, "the new service and a larger index",
           (index, new_index, services))
    expect(took < 5, "the answer right after the change", took)


def bad_wait_and_index():
    index, _ = c.health.service("web")
    raised = raises(BadRequest, lambda: c.health.service("web", index=index, wait="10"), "wait=10 (no unit)")
    expect("Invalid wait time" in str(raised), "400 'Invalid wait time'", str(raised))
    raised = raises(BadRequest, lambda: c.catalog.services(index="abc"), "index=abc")
    expect("Invalid index" in str(raised), "400 'Invalid index'", str(raised))
    # Every py-consul error is a ConsulException.
    expect(isinstance(raised, consul.ConsulException), "a ConsulException", type(raised))


for name, check in [
    ("catalog.services", catalog_services),
    ("catalog.service (tag, unknown, group)", catalog_service),
    ("health.service (passing, tags, unknown)", health_service),
    ("catalog and health in one order", same_order_in_catalog_and_health),
    ("health.checks", health_checks),
    ("health.state", health_state),
    ("catalog.nodes", catalog_nodes),
    ("catalog.node (and unknown)", catalog_node),
    ("catalog.datacenters", datacenters),
    ("status.leader and status.peers", status),
    ("agent.self", agent_self),
    ("agent.members", agent_members),
    ("blocking query times out unchanged", blocking_times_out_unchanged),
    ("blocking query wakes on a change", blocking_wakes_on_a_change),
    ("bad wait and index raise BadRequest", bad_wait_and_index),
]:
    checks.run(name, check)
checks.report()
