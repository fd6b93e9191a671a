#!/usr/bin/env bash
# Installs what Switchboard's build, tests and (with `bench`) benchmarks need, skipping
# anything already present. Safe to run again.
#   scripts/deps.sh         build + tests: protoc, etcd, rnacos, curl, jq, setpriv,
#                           schemathesis, py-consul, vmagent
#   scripts/deps.sh bench   also wrk and taskset for `make bench`
set -euo pipefail

want_bench=false
[[ "${1:-}" == "bench" ]] && want_bench=true

say() { printf 'deps: %s\n' "$*"; }

apt_updated=false
apt_install() {
    local sudo=""
    [[ $(id -u) -ne 0 ]] && sudo="sudo"
    if ! $apt_updated; then
        $sudo apt-get update -qq
        apt_updated=true
    fi
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}

command -v cargo >/dev/null || { say "cargo is required (https://rustup.rs)"; exit 1; }
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy rustfmt 2>/dev/null || true

# protoc builds etcd-client's gRPC stubs; etcd (Debian 3.4) is the real server the tests start.
if ! command -v protoc >/dev/null; then
    say "installing protobuf-compiler (protoc)"
    apt_install protobuf-compiler
fi
if ! command -v etcd >/dev/null || ! command -v etcdctl >/dev/null; then
    say "installing etcd-server and etcd-client (Debian packages)"
    apt_install etcd-server etcd-client
fi
# curl and jq run the commands of README.md and docs/ (tests/server/docs.rs).
for tool in curl jq; do
    if ! command -v "$tool" >/dev/null; then
        say "installing $tool (Debian package)"
        apt_install "$tool"
    fi
done
# setpriv starts every server a test runs so that it dies with the test process
# (tests/support/children.rs); util-linux is essential on Debian, but not in every image.
if ! command -v setpriv >/dev/null; then
    say "installing util-linux (setpriv)"
    apt_install util-linux
fi
# rnacos (a Nacos server in Rust) is the real Nacos the tests and the bench start.
if ! command -v rnacos >/dev/null && [[ ! -x "$HOME/.cargo/bin/rnacos" ]]; then
    say "installing rnacos 0.8.8 from crates.io (a few minutes, once)"
    cargo install rnacos --version 0.8.8 --locked --quiet
fi
# Python tools the tests run live in one venv of their own (Debian's pip is externally
# managed), where the tests look for them.
venv="${XDG_CACHE_HOME:-$HOME/.cache}/switchboard/venv"
make_venv() {
    [[ -x "$venv/bin/pip" ]] && return
    if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
        apt_install python3-venv
    fi
    python3 -m venv "$venv"
}
pip_version() {
    "$venv/bin/python" -c 'import importlib.metadata as m, sys; print(m.version(sys.argv[1]))' \
        "$1" 2>/dev/null || true
}
# schemathesis (PyPI) checks the server against /openapi.json (tests/server/openapi.rs).
schemathesis_version=4.32.5
if [[ "$("$venv/bin/st" --version 2>/dev/null)" != *"$schemathesis_version"* ]]; then
    say "installing schemathesis $schemathesis_version (PyPI) into $venv"
    make_venv
    "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$schemathesis_version"
fi
# py-consul (PyPI, import `consul`) is the Consul client the Consul API is proven with
# (tests/server/consul_clients/).
py_consul_version=1.8.0
if [[ "$(pip_version py-consul)" != "$py_consul_version" ]]; then
    say "installing py-consul $py_consul_version (PyPI) into $venv"
    make_venv
    "$venv/bin/pip" install --quiet --disable-pip-version-check "py-consul==$py_consul_version"
fi
# vmagent (Debian's victoria-metrics) discovers scrape targets through the Consul API
# with Prometheus's consul_sd_configs (tests/server/consul_clients/); the tests start
# /usr/bin/vmagent themselves. Debian's prometheus package is built without Consul
# discovery, so it cannot stand in.
if [[ ! -x /usr/bin/vmagent ]]; then
    say "installing victoria-metrics (Debian package, for vmagent)"
    apt_install --no-install-recommends victoria-metrics
fi
# The Debian package starts a system etcd on 2379; the tests start their own on free ports.
if command -v systemctl >/dev/null && systemctl is-active --quiet etcd 2>/dev/null; then
    systemctl stop etcd 2>/dev/null || true
fi

if $want_bench; then
    if ! command -v wrk >/dev/null; then
        say "installing wrk (Debian package)"
        apt_install wrk
    fi
    if ! command -v taskset >/dev/null; then
        say "installing util-linux (taskset)"
        apt_install util-linux
    fi
fi
say "ok"
