"""The namespace harness itself: hosts reach each other only across the switch, an
unplugged cable cuts a host off, and nothing is left behind after a run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests import netns

REASON = netns.skip_reason()  # never a skip in CI (BOOKREC_REQUIRE_NETNS=1)
pytestmark = pytest.mark.skipif(REASON is not None, reason=REASON or "")

ECHO_SERVER = """
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 7000))
s.listen()
print("listening", flush=True)
while True:
    c, _ = s.accept()
    c.sendall(c.recv(100).upper())
    c.close()
"""

ECHO_CLIENT = """
import socket, sys
c = socket.create_connection((sys.argv[1], 7000), timeout=3)
c.sendall(b"hello from " + sys.argv[2].encode())
print(c.recv(100).decode())
"""


def _echo(host: netns.Host, target: str) -> subprocess.CompletedProcess[str]:
    return host.run([sys.executable, "-c", ECHO_CLIENT, target, host.name], timeout=20)


def _names() -> set[str]:
    out = subprocess.run(
        ["ip", "netns", "list"], check=False, capture_output=True, text=True
    ).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


@pytest.mark.timeout(60)
def test_tcp_crosses_the_switch_and_only_the_switch(tmp_path: Path) -> None:
    with netns.Net(subnet="10.78.0", tag="self") as net:
        server = net.add_host("a", 1)
        client = net.add_host("b", 2)
        echo = server.spawn(
            [sys.executable, "-c", ECHO_SERVER], tmp_path / "echo.log", stdout=subprocess.PIPE
        )
        assert echo.popen.stdout is not None
        assert echo.popen.stdout.readline() == b"listening\n", echo.tail()

        done = _echo(client, server.addr)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "HELLO FROM B"

        # Each host has only lo and eth0 with its own address.
        addrs = client.run(["ip", "-4", "-o", "addr"]).stdout
        assert f"{client.addr}/24" in addrs and server.addr not in addrs
        # The host running pytest is not on the switch: whatever the address reaches from
        # here (nothing, or a sandbox's proxy), it is not the echo server.
        here = subprocess.run(
            [sys.executable, "-c", ECHO_CLIENT, server.addr, "pytest"],
            check=False,
            capture_output=True,
            text=True,
            timeout=20,
        )
        assert "HELLO FROM PYTEST" not in here.stdout

        client.link(up=False)
        cut = _echo(client, server.addr)
        assert cut.returncode != 0, "an unplugged host reaches nobody"
        client.link(up=True)
        netns.wait_for(
            "the cable to carry traffic again",
            lambda: _echo(client, server.addr).returncode == 0,
            timeout=20,
        )

        assert echo.kill9() == -9
        made = {server.ns, client.ns, net.switch_ns}
        assert made <= _names()
    assert not made & _names(), "closing the net deletes every namespace it made"


@pytest.mark.timeout(60)
def test_a_dead_runs_namespaces_are_removed(tmp_path: Path) -> None:
    # A pid that cannot be alive: above the kernel's pid_max.
    dead = int(Path("/proc/sys/kernel/pid_max").read_text()) + 1
    stale = f"{netns.PREFIX}{dead}-left"
    subprocess.run(["ip", "netns", "add", stale], check=True)
    sleeper = subprocess.Popen(["ip", "netns", "exec", stale, "sleep", "600"])
    try:
        assert stale in _names()
        assert stale in netns.cleanup_stale()
        assert stale not in _names()
        assert sleeper.wait(timeout=10) == -9, "processes inside a stale namespace are killed"
    finally:
        if sleeper.poll() is None:
            sleeper.kill()
        subprocess.run(["ip", "netns", "del", stale], check=False, capture_output=True)


@pytest.mark.timeout(60)
def test_a_failing_body_still_cleans_up(tmp_path: Path) -> None:
    names: set[str] = set()
    with pytest.raises(ZeroDivisionError), netns.Net(subnet="10.79.0", tag="fail") as net:
        host = net.add_host("x", 5)
        host.spawn(["sleep", "600"], tmp_path / "sleep.log")
        names = {host.ns, net.switch_ns}
        _ = 1 / 0
    assert names and not names & _names()
