"""Throwaway PKI for TLS tests, made with the openssl CLI: a CA, a server certificate
for 127.0.0.1/localhost and client certificates, signed by that CA or self-signed."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _self_signed(out: Path, name: str, cn: str, ca: bool) -> tuple[Path, Path]:
    key, cert = out / f"{name}.key", out / f"{name}.pem"
    ext = ["-addext", "basicConstraints=critical,CA:TRUE"] if ca else []
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-subj", f"/CN={cn}", "-keyout", str(key), "-out", str(cert), *ext,
        cwd=out,
    )  # fmt: skip
    return cert, key


def _signed(out: Path, name: str, cn: str, ca: tuple[Path, Path], ext: str) -> tuple[Path, Path]:
    key, csr, cert = out / f"{name}.key", out / f"{name}.csr", out / f"{name}.pem"
    extfile = out / f"{name}.ext"
    extfile.write_text(ext + "\n")
    _openssl(
        "req", "-new", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={cn}",
        "-keyout", str(key), "-out", str(csr), cwd=out,
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", str(csr), "-CA", str(ca[0]), "-CAkey", str(ca[1]),
        "-CAcreateserial", "-days", "2", "-out", str(cert), "-extfile", str(extfile), cwd=out,
    )  # fmt: skip
    return cert, key


@dataclass(frozen=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path  # signed by ca
    client_key: Path
    stranger_cert: Path  # self-signed: no CA vouches for it
    stranger_key: Path


def make_pki(out: Path) -> Pki:
    out.mkdir(parents=True, exist_ok=True)
    ca = _self_signed(out, "ca", "bookrec test CA", ca=True)
    server = _signed(
        out,
        "server",
        "localhost",
        ca,
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth",
    )
    client = _signed(out, "client", "bookrec test client", ca, "extendedKeyUsage=clientAuth")
    stranger = _self_signed(out, "stranger", "stranger", ca=False)
    return Pki(ca[0], *server, *client, *stranger)
