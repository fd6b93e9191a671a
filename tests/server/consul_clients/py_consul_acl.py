"""py-consul 1.8.0 against Switchboard with access control on: Switchboard's tokens are
Consul ACL tokens. An unknown token is refused everywhere (403 `ACL not found`), a token
without the role a write needs is refused the write (403 `Permission denied`), and a
read without a token is filtered, not refused, as Consul does (research17 §6); py-consul
raises `ACLPermissionDenied` for each 403 (§5).

SB_ADMIN is the bootstrap admin secret the server wrote into its data dir.
"""

import os

import consul
from consul.exceptions import ACLPermissionDenied

from common import Checks, client, expect, native, raises

ADMIN = os.environ["SB_ADMIN"]
checks = Checks()

status, made = native("POST", "/api/v1/tokens", {"name": "py-consul reader", "role": "read", "namespaces": ["*"]},
                      token=ADMIN)
if status != 201:
    raise SystemExit(f"creating a read token through /api/v1/tokens failed: {status} {made}")
READER = made["secret"]

admin, reader, stranger, anonymous = client(ADMIN), client(READER), client("not-a-token-of-this-server"), client()


def register(who):
    return lambda: who.agent.service.register("secure", service_id="secure-1", address="192.0.2.60", port=443)


def admin_registers_and_reads():
    expect(register(admin)() is True, "True from register with the admin token")
    _, nodes = admin.catalog.service("secure")
    expect([n["ServiceID"] for n in nodes] == ["secure-1"], "secure-1 read back", nodes)


def unknown_token_is_refused():
    for what, call in [("catalog.services", stranger.catalog.services),
                       ("health.service", lambda: stranger.health.service("secure")),
                       ("agent.service.register", register(stranger))]:
        raised = raises(ACLPermissionDenied, call, f"{what} with an unknown token")
        expect("ACL not found" in str(raised), f"403 'ACL not found' from {what}", str(raised))


def read_token_reads_but_cannot_write():
    _, entries = reader.health.service("secure")
    expect([e["Service"]["ID"] for e in entries] == ["secure-1"], "secure-1 with a read token", entries)
    raised = raises(ACLPermissionDenied, register(reader), "register with a read token")
    expect("Permission denied" in str(raised), "403 'Permission denied'", str(raised))
    raised = raises(ACLPermissionDenied, lambda: reader.agent.service.deregister("secure-1"),
                    "deregister with a read token")
    expect("Permission denied" in str(raised), "403 'Permission denied'", str(raised))


def anonymous_reads_are_filtered():
    _, nodes = anonymous.catalog.service("secure")
    expect(nodes == [], "reads without a token filtered to nothing (anonymous has no access)", nodes)
    raised = raises(ACLPermissionDenied, register(anonymous), "register without a token")
    expect("Permission denied" in str(raised) and "anonymous" in str(raised),
           "403 naming the anonymous token", str(raised))
    expect(isinstance(raised, consul.ConsulException), "a ConsulException", type(raised))


for name, check in [
    ("the admin token registers and reads", admin_registers_and_reads),
    ("an unknown token: ACLPermissionDenied 'ACL not found'", unknown_token_is_refused),
    ("a read token reads, its writes are denied", read_token_reads_but_cannot_write),
    ("no token: reads filtered, writes denied", anonymous_reads_are_filtered),
]:
    checks.run(name, check)
checks.report()
