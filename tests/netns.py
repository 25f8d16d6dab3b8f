"""Hosts for tests: each one a Linux network namespace on a shared virtual switch.

A ``Net`` owns a switch namespace holding a bridge, and one namespace per host,
joined to the bridge by a veth pair (``eth0`` on the host side, ``v<N>`` on the
switch side). Nothing is created in the caller's own namespace, so no host
interface names or addresses can collide with another run. Hosts get
``<subnet>.<N>/24``; a process started on a host (``Host.spawn``) sees only that
host's ``lo`` and ``eth0``, so traffic between hosts really crosses the veths.

Names are ``br-<pid>-<host>``. ``Net.close`` kills every process still running on
its hosts and deletes the namespaces (the veths and the bridge go with them),
also after a failure; ``cleanup_stale`` removes what a run whose pid is gone
left behind (a ``kill -9`` of pytest). ``unavailable`` says why namespaces cannot
be made here (not root, no ``ip``); ``skip_reason`` is that message for a skip,
except where ``BOOKREC_REQUIRE_NETNS=1`` (CI, .ci/run): there the tests run and
fail with it, so a missing prerequisite never passes as a skip.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

PREFIX = "br-"
REQUIRE_ENV = "BOOKREC_REQUIRE_NETNS"
_NAME = re.compile(rf"^{PREFIX}(\d+)-\S+")


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """One ``ip`` command; a failure names the command and ip's own message."""
    done = subprocess.run(["ip", *args], check=False, capture_output=True, text=True, timeout=30)
    if check and done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip() or done.returncode}")
    return done


def unavailable() -> str | None:
    """Why network namespaces cannot be created here, or None when they can."""
    if shutil.which("ip") is None:
        return "network namespaces need the ip command (Debian: apt-get install iproute2)"
    probe = f"{PREFIX}{os.getpid()}-probe"
    done = _ip("netns", "add", probe, check=False)
    if done.returncode != 0:
        return (
            f"cannot create a network namespace ({done.stderr.strip()}): "
            "run as root (CI does) or with CAP_SYS_ADMIN and CAP_NET_ADMIN"
        )
    _ip("netns", "del", probe, check=False)
    return None


def skip_reason() -> str | None:
    """Why namespace tests should skip here: ``unavailable()``, or None where they can
    run or where ``BOOKREC_REQUIRE_NETNS=1`` demands that they run (and fail)."""
    if os.environ.get(REQUIRE_ENV) == "1":
        return None
    return unavailable()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _namespaces() -> list[str]:
    out = _ip("netns", "list", check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def _kill_inside(ns: str) -> None:
    """SIGKILL every process still in ``ns`` (a namespace outlives its name otherwise)."""
    for raw in _ip("netns", "pids", ns, check=False).stdout.split():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(raw), signal.SIGKILL)


def cleanup_stale() -> list[str]:
    """Delete the namespaces of runs whose process is gone; returns their names."""
    removed = []
    for ns in _namespaces():
        m = _NAME.match(ns)
        if m and int(m.group(1)) != os.getpid() and not _pid_alive(int(m.group(1))):
            _kill_inside(ns)
            _ip("netns", "del", ns, check=False)
            removed.append(ns)
    return removed


@dataclass
class Proc:
    """A process on a host: its own session, so a kill reaches its children too."""

    host: Host
    argv: Sequence[str]
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, sig)

    def kill9(self) -> int:
        """What a host crash does to it: SIGKILL to the whole group, no clean-up."""
        self.signal(signal.SIGKILL)
        return self.popen.wait(timeout=30)

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM, then SIGKILL if it has not exited within ``timeout``."""
        self.signal(signal.SIGTERM)
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return self.kill9()

    def tail(self, chars: int = 4000) -> str:
        """The end of its log, for assertion messages."""
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return ""


@dataclass
class Host:
    net: Net
    name: str
    index: int
    procs: list[Proc] = field(default_factory=list)

    @property
    def ns(self) -> str:
        return f"{self.net.prefix}{self.name}"

    @property
    def addr(self) -> str:
        return f"{self.net.subnet}.{self.index}"

    def exec_argv(self, argv: Sequence[str]) -> list[str]:
        """``argv`` run inside this host's namespace."""
        return ["ip", "netns", "exec", self.ns, *argv]

    def run(
        self,
        argv: Sequence[str],
        timeout: float = 60.0,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run to completion on this host, capturing its output."""
        return subprocess.run(
            self.exec_argv(argv),
            check=False,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=None if env is None else dict(env),
            cwd=cwd,
        )

    def spawn(
        self,
        argv: Sequence[str],
        log: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        stdin: int | None = subprocess.DEVNULL,
        stdout: int | None = None,
    ) -> Proc:
        """Start ``argv`` on this host; stderr (and stdout unless piped) go to ``log``."""
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as out:
            popen = subprocess.Popen(
                self.exec_argv(argv),
                stdin=stdin,
                stdout=out if stdout is None else stdout,
                stderr=out,
                env=dict(os.environ if env is None else env),
                cwd=cwd,
                start_new_session=True,
            )
        proc = Proc(self, list(argv), popen, log)
        self.procs.append(proc)
        return proc

    def link(self, up: bool) -> None:
        """Plug or unplug this host's cable (its switch-side veth)."""
        _ip("-n", self.net.switch_ns, "link", "set", f"v{self.index}", "up" if up else "down")


class Net:
    """A switch and the hosts on it; a context manager that always cleans up."""

    def __init__(self, subnet: str = "10.77.0", tag: str | None = None) -> None:
        reason = unavailable()
        if reason is not None:
            raise RuntimeError(reason)
        cleanup_stale()
        self.subnet = subnet
        self.prefix = f"{PREFIX}{os.getpid()}-{tag + '-' if tag else ''}"
        self.hosts: dict[str, Host] = {}
        self._made: list[str] = []
        self.switch_ns = f"{self.prefix}sw"
        try:
            self._add_ns(self.switch_ns)
            _ip("-n", self.switch_ns, "link", "add", "br0", "type", "bridge")
            _ip("-n", self.switch_ns, "link", "set", "br0", "up")
        except BaseException:
            self.close()
            raise

    def _add_ns(self, ns: str) -> None:
        if ns in _namespaces():  # our own pid's leftover (a reused pid): start clean
            _kill_inside(ns)
            _ip("netns", "del", ns, check=False)
        _ip("netns", "add", ns)
        self._made.append(ns)
        _ip("-n", ns, "link", "set", "lo", "up")

    def add_host(self, name: str, index: int) -> Host:
        """A host at ``<subnet>.<index>``, cabled to the switch."""
        if not 1 <= index <= 254 or any(h.index == index for h in self.hosts.values()):
            raise ValueError(f"host index {index} is out of 1..254 or taken")
        host = Host(self, name, index)
        self._add_ns(host.ns)
        port = f"v{index}"
        peer = ("peer", "name", port, "netns", self.switch_ns)
        _ip("link", "add", "eth0", "netns", host.ns, "type", "veth", *peer)
        _ip("-n", self.switch_ns, "link", "set", port, "master", "br0")
        _ip("-n", self.switch_ns, "link", "set", port, "up")
        _ip("-n", host.ns, "addr", "add", f"{host.addr}/24", "dev", "eth0")
        _ip("-n", host.ns, "link", "set", "eth0", "up")
        self.hosts[name] = host
        return host

    def close(self) -> None:
        """Kill what runs on the hosts, then delete every namespace this net made."""
        for host in self.hosts.values():
            for proc in host.procs:
                proc.signal(signal.SIGKILL)
            for proc in host.procs:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.popen.wait(timeout=10)
                for pipe in (proc.popen.stdin, proc.popen.stdout):
                    if pipe is not None:
                        pipe.close()
        for ns in reversed(self._made):
            _kill_inside(ns)
            _ip("netns", "del", ns, check=False)
        self._made.clear()
        self.hosts.clear()

    def __enter__(self) -> Net:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def wait_for(what: str, check: object, timeout: float = 30.0, every: float = 0.1) -> None:
    """Poll ``check()`` until it is true; a timeout names ``what`` it waited for."""
    assert callable(check)
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)
