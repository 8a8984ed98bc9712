"""Self-signed TLS for the agent, pinned by clients like SSH host keys.

``tls init`` writes an ECDSA P-256 key (0600) and a self-signed certificate for
the machine's names into ``<state_dir>/tls/``. Clients pin the certificate's
SHA-256 fingerprint on first use; ``tls fingerprint`` prints it so it can be
compared out of band.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import ipaddress
import socket
from pathlib import Path

CERT_NAME = "cert.pem"
KEY_NAME = "key.pem"


def tls_dir(state_dir: Path) -> Path:
    return Path(state_dir) / "tls"


def fingerprint_der(der: bytes) -> str:
    """SSH-style: SHA256:<base64 without padding> of the DER certificate."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(der).digest()).decode().rstrip("=")


def fingerprint_pem(pem: bytes) -> str:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    return fingerprint_der(x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER))


def init(state_dir: Path, names: list[str] | None = None, *, force: bool = False, days: int = 3650) -> tuple[Path, Path, str]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    d = tls_dir(state_dir)
    cert_path, key_path = d / CERT_NAME, d / KEY_NAME
    if cert_path.exists() and not force:
        raise FileExistsError(f"{cert_path} exists; pass --force to replace it (clients that pinned it will refuse the new one)")
    host = socket.gethostname()
    all_names = list(dict.fromkeys([*(names or []), host, "localhost", "127.0.0.1", "::1"]))
    sans: list[x509.GeneralName] = []
    for n in all_names:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            sans.append(x509.DNSName(n))
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, all_names[0]), x509.NameAttribute(NameOID.ORGANIZATION_NAME, "sparkdeck agent")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    from agent import statefiles  # 0600, owned by the state dir's owner when root runs `tls init`

    statefiles.ensure_dir(d)
    statefiles.write_file(key_path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    statefiles.write_file(cert_path, cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path, fingerprint_der(cert.public_bytes(serialization.Encoding.DER))
