"""The testbed's certificate authority and one workload certificate per service (openssl CLI).

Certificates name the workload as a mesh would: DNS `<service>` (what sidecars verify) and the SPIFFE
URI `spiffe://cluster.local/ns/default/sa/bookinfo-<service>`. They serve as both server and client
certificates. They are made once per state folder and reused.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from .errors import TestbedFailure
from .haproxy_config import Identity

TRUST_DOMAIN = "cluster.local"
VALIDITY_DAYS = 3650
_EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


def _openssl(args: list[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(["openssl", *args], cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _wait(processes: list[subprocess.Popen], what: str) -> None:
    for process in processes:
        _, stderr = process.communicate()
        if process.returncode != 0:
            raise TestbedFailure(f"openssl failed making {what}: {stderr.decode(errors='replace').strip()[:300]}")


def spiffe_id(service: str) -> str:
    return f"spiffe://{TRUST_DOMAIN}/ns/default/sa/bookinfo-{service}"


def ensure_identities(certs_dir: Path, names: list[str]) -> dict[str, Identity]:
    """The CA and a certificate for each name, made if missing; `names` are service names."""
    certs_dir.mkdir(parents=True, exist_ok=True)
    ca_pem = certs_dir / "ca.pem"
    if not ca_pem.exists():
        _wait(
            [
                _openssl(
                    [
                        "req",
                        "-x509",
                        "-new",
                        *_EC,
                        "-keyout",
                        "ca.key",
                        "-out",
                        "ca.pem.tmp",
                        "-days",
                        str(VALIDITY_DAYS),
                        "-subj",
                        "/O=meshload testbed/CN=meshload testbed CA",
                        "-addext",
                        "basicConstraints=critical,CA:TRUE",
                        "-addext",
                        "keyUsage=critical,keyCertSign,cRLSign",
                    ],
                    certs_dir,
                )
            ],
            "the testbed CA",
        )
        (certs_dir / "ca.pem.tmp").rename(ca_pem)
    missing = [name for name in names if not (certs_dir / f"{name}.pem").exists()]
    requests = []
    for name in missing:
        (certs_dir / f"{name}.ext").write_text(
            f"subjectAltName=DNS:{name},DNS:{name}.default.svc.{TRUST_DOMAIN},URI:{spiffe_id(name)}\n"
            "extendedKeyUsage=serverAuth,clientAuth\nbasicConstraints=CA:FALSE\n"
        )
        requests.append(
            _openssl(
                [
                    "req",
                    "-new",
                    *_EC,
                    "-keyout",
                    f"{name}.key",
                    "-out",
                    f"{name}.csr",
                    "-subj",
                    f"/O=meshload testbed/CN={name}",
                ],
                certs_dir,
            )
        )
    _wait(requests, "certificate requests")
    signings = [
        _openssl(
            [
                "x509",
                "-req",
                "-in",
                f"{name}.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-set_serial",
                str(1000 + index),
                "-days",
                str(VALIDITY_DAYS),
                "-extfile",
                f"{name}.ext",
                "-out",
                f"{name}.crt",
            ],
            certs_dir,
        )
        for index, name in enumerate(missing)
    ]
    _wait(signings, "workload certificates")
    for name in missing:
        # HAProxy wants the certificate and its key in one file
        bundle = (certs_dir / f"{name}.crt").read_text() + (certs_dir / f"{name}.key").read_text()
        target = certs_dir / f"{name}.pem"
        target.with_suffix(".tmp").write_text(bundle)
        target.with_suffix(".tmp").chmod(0o600)
        target.with_suffix(".tmp").rename(target)
    return {name: Identity(crt_pem=certs_dir / f"{name}.pem", ca_pem=ca_pem) for name in names}
