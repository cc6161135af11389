"""Certificates and node keys for a Flower deployment of safeflow (tests and demos).

Flower 1.4x secures a deployment in two layers, and safeflow makes the files for both:

* **TLS** on the SuperLink's one HTTP port (Fleet, Control and Runtime APIs): a CA, a
  server certificate whose subject alternative names cover the addresses the SuperNodes
  dial (``--ssl-certfile``, ``--ssl-keyfile``, ``--ssl-ca-certfile``), and the CA as the
  SuperNodes' ``--root-certificates``. :func:`make_client_cert` issues client
  certificates from the same CA for services that want mutual TLS; Flower's Fleet API
  does not use them (SuperNodes authenticate with node keys instead).
* **Node authentication** (``flower-superlink --enable-supernode-auth``): each SuperNode
  holds an ECDSA key on a NIST curve in OpenSSH format (``--auth-supernode-private-key``);
  its public key (``ecdsa-sha2-nistp384 ...``) is registered at the SuperLink with
  ``flwr supernode register <file.pub>``. Unregistered nodes are refused.

:func:`write_deployment_pki` writes all of it into one directory (private keys 0600).
:func:`require_secure` is the production profile's guard: it refuses to start a
deployment without TLS or without node authentication, with a typed error saying what
to pass instead.

These helpers are for tests and demonstrations; a production CA is the hospital's own.

Examples
--------
>>> ca = make_ca("demo CA")
>>> server = make_server_cert(ca, hosts=["127.0.0.1", "localhost"])
>>> server.cert_pem.startswith(b"-----BEGIN CERTIFICATE-----")
True
>>> node = make_node_keypair()
>>> node.public_openssh.split()[0]
b'ecdsa-sha2-nistp384'
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from safeflow.errors import InvalidParameter, TransportError, VerificationError
from safeflow.transport.flower.config import PROFILES

try:  # in the error tree once safeflow.errors defines them
    from safeflow.errors import InsecureTransport, UnpinnedApp  # type: ignore[attr-defined]
except ImportError:
    class InsecureTransport(TransportError, PermissionError):  # type: ignore[no-redef]
        """A deployment would start without TLS or without node authentication."""

    class UnpinnedApp(VerificationError, PermissionError):  # type: ignore[no-redef]
        """A site refused a Flower run whose app (FAB) hash its ``site.toml`` does not pin."""


@dataclass(frozen=True)
class PemPair:
    """A certificate and its private key, both PEM (the key never appears in a repr)."""

    cert_pem: bytes
    key_pem: bytes = field(repr=False)

    @property
    def certificate(self) -> x509.Certificate:
        """The parsed certificate."""
        return x509.load_pem_x509_certificate(self.cert_pem)


@dataclass(frozen=True)
class NodeKeyPair:
    """A SuperNode authentication key: OpenSSH private key and ``.pub`` line."""

    private_openssh: bytes = field(repr=False)
    public_openssh: bytes


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP384R1())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM,
                             serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _check_days(days: int) -> int:
    if not isinstance(days, int) or not 1 <= days <= 825:
        raise InvalidParameter(f"days must be an int between 1 and 825; got {days!r}")
    return days


def make_ca(common_name: str = "safeflow test CA", *, days: int = 30) -> PemPair:
    """A self-signed CA (ECDSA P-384) that signs the server and client certificates.

    Examples
    --------
    >>> ca = make_ca("x", days=1)
    >>> ca.certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    True
    """
    _check_days(days)
    key = _key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = _now()
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .sign(key, hashes.SHA384()))
    return PemPair(cert.public_bytes(serialization.Encoding.PEM), _pem_key(key))


def _san(hosts: Sequence[str]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    for h in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            names.append(x509.DNSName(h))
    return x509.SubjectAlternativeName(names)


def _leaf(ca: PemPair, common_name: str, hosts: Sequence[str], usage: x509.ObjectIdentifier,
          days: int) -> PemPair:
    _check_days(days)
    ca_key = serialization.load_pem_private_key(ca.key_pem, password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise InvalidParameter("the CA key must be an ECDSA key made by make_ca")
    ca_cert = ca.certificate
    key = _key()
    now = _now()
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
               .issuer_name(ca_cert.subject).public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(minutes=5))
               .not_valid_after(now + dt.timedelta(days=days))
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                   ca_key.public_key()), critical=False))
    if hosts:
        builder = builder.add_extension(_san(hosts), critical=False)
    cert = builder.sign(ca_key, hashes.SHA384())
    return PemPair(cert.public_bytes(serialization.Encoding.PEM), _pem_key(key))


def make_server_cert(ca: PemPair, hosts: Sequence[str] = ("127.0.0.1", "localhost"), *,
                     days: int = 30) -> PemPair:
    """A TLS server certificate for the SuperLink, valid for ``hosts`` (IPs or DNS names).

    Examples
    --------
    >>> cert = make_server_cert(make_ca(), hosts=["127.0.0.1"]).certificate
    >>> [str(ip) for ip in cert.extensions.get_extension_for_class(
    ...     x509.SubjectAlternativeName).value.get_values_for_type(x509.IPAddress)]
    ['127.0.0.1']
    """
    if isinstance(hosts, str) or not hosts:
        raise InvalidParameter("hosts must be a non-empty list such as ['127.0.0.1']")
    return _leaf(ca, str(hosts[0]), hosts, ExtendedKeyUsageOID.SERVER_AUTH, days)


def make_client_cert(ca: PemPair, name: str, *, days: int = 30) -> PemPair:
    """A TLS client certificate (for services that use mutual TLS), common name ``name``.

    Examples
    --------
    >>> make_client_cert(make_ca(), "beijing").certificate.subject.rfc4514_string()
    'CN=beijing'
    """
    return _leaf(ca, name, (), ExtendedKeyUsageOID.CLIENT_AUTH, days)


def make_node_keypair() -> NodeKeyPair:
    """A SuperNode authentication key pair (ECDSA P-384, OpenSSH format, as Flower expects).

    Examples
    --------
    >>> from cryptography.hazmat.primitives.serialization import load_ssh_private_key
    >>> pair = make_node_keypair()
    >>> isinstance(load_ssh_private_key(pair.private_openssh, None), ec.EllipticCurvePrivateKey)
    True
    """
    key = _key()
    private = key.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                           serialization.PublicFormat.OpenSSH)
    return NodeKeyPair(private, public + b"\n")


def node_public_key_der(public: bytes) -> bytes:
    """A node public key (OpenSSH line or PEM) as DER SubjectPublicKeyInfo, for comparison.

    The SuperLink reports a node's key as PEM; sites hand out their ``.pub`` line. Both
    name the same key when their DER forms are equal.

    Examples
    --------
    >>> pair = make_node_keypair()
    >>> pem = serialization.load_ssh_public_key(pair.public_openssh).public_bytes(
    ...     serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    >>> node_public_key_der(pem) == node_public_key_der(pair.public_openssh)
    True
    """
    data = bytes(public).strip()
    try:
        if data.startswith(b"-----BEGIN"):
            key = serialization.load_pem_public_key(data)
        else:
            key = serialization.load_ssh_public_key(data)
    except (ValueError, TypeError, UnsupportedAlgorithm) as e:
        raise InvalidParameter(
            "a node public key must be an OpenSSH line ('ecdsa-sha2-nistp384 ...') or a PEM "
            "public key; re-export it with make_node_keypair() or ssh-keygen") from e
    return key.public_bytes(serialization.Encoding.DER,
                            serialization.PublicFormat.SubjectPublicKeyInfo)


@dataclass(frozen=True)
class DeploymentPKI:
    """Paths of the files :func:`write_deployment_pki` wrote."""

    directory: Path
    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    node_keys: dict[str, Path]
    node_public_keys: dict[str, Path]


def _write(path: Path, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.fchmod(fd, mode)
        os.write(fd, data)
    finally:
        os.close(fd)


def write_deployment_pki(directory: str | Path, nodes: Sequence[str], *,
                         hosts: Sequence[str] = ("127.0.0.1", "localhost"),
                         days: int = 30) -> DeploymentPKI:
    """Write a CA, a SuperLink server certificate and one node key pair per name.

    Layout: ``ca.pem ca.key server.pem server.key nodes/<name>.key nodes/<name>.pub``;
    private keys are mode 0600 and nothing is overwritten (a typed error if a file exists).

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     pki = write_deployment_pki(d, ["beijing", "amsterdam"])
    ...     keys = sorted(p.name for p in pki.node_keys.values())
    ...     keys, oct(pki.server_key.stat().st_mode & 0o777)
    (['amsterdam.key', 'beijing.key'], '0o600')
    """
    root = Path(directory)
    (root / "nodes").mkdir(parents=True, exist_ok=True)
    for name in nodes:
        if not isinstance(name, str) or not name or "/" in name or name.startswith("."):
            raise InvalidParameter(f"node names must be plain file names; got {name!r}")
    ca = make_ca(days=days)
    server = make_server_cert(ca, hosts, days=days)
    out = DeploymentPKI(root, root / "ca.pem", root / "ca.key", root / "server.pem",
                        root / "server.key", {}, {})
    try:
        _write(out.ca_cert, ca.cert_pem, 0o644)
        _write(out.ca_key, ca.key_pem, 0o600)
        _write(out.server_cert, server.cert_pem, 0o644)
        _write(out.server_key, server.key_pem, 0o600)
        for name in nodes:
            pair = make_node_keypair()
            out.node_keys[name] = root / "nodes" / f"{name}.key"
            out.node_public_keys[name] = root / "nodes" / f"{name}.pub"
            _write(out.node_keys[name], pair.private_openssh, 0o600)
            _write(out.node_public_keys[name], pair.public_openssh, 0o644)
    except FileExistsError as e:
        raise InvalidParameter(f"{e.filename} already exists; write the PKI into a new, "
                               "empty directory (nothing was overwritten)") from None
    return out


def require_secure(profile: str, *, tls: bool, node_auth: bool) -> None:
    """Refuse an insecure start under the ``production`` profile (typed error).

    Parameters
    ----------
    profile : {"production", "test"}
    tls : bool
        TLS certificates are configured (no ``--insecure``).
    node_auth : bool
        SuperNode authentication is on (``--enable-supernode-auth`` at the SuperLink, a
        private key at each SuperNode).

    Examples
    --------
    >>> require_secure("test", tls=False, node_auth=False)
    >>> require_secure("production", tls=False, node_auth=True)  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    ...
    safeflow.transport.flower.pki.InsecureTransport: refusing to start ... without TLS...
    """
    if profile not in PROFILES:
        raise InvalidParameter(f"profile must be one of {PROFILES}; got {profile!r}")
    if profile != "production":
        return
    if not tls:
        raise InsecureTransport(
            "refusing to start the production profile without TLS: envelopes, node "
            "identities and certificates would cross the network in clear. Pass the "
            "SuperLink's CA certificate (root_certificates=...) and start the SuperLink "
            "with --ssl-certfile/--ssl-keyfile/--ssl-ca-certfile (safeflow's "
            "write_deployment_pki makes test files), or use profile='test' on loopback")
    if not node_auth:
        raise InsecureTransport(
            "refusing to start the production profile without SuperNode authentication: "
            "any machine could join the federation as a site. Start the SuperLink with "
            "--enable-supernode-auth, give each SuperNode --auth-supernode-private-key and "
            "register its public key with `flwr supernode register`")


__all__ = [
    "DeploymentPKI",
    "InsecureTransport",
    "NodeKeyPair",
    "PemPair",
    "UnpinnedApp",
    "make_ca",
    "make_client_cert",
    "make_node_keypair",
    "make_server_cert",
    "node_public_key_der",
    "require_secure",
    "write_deployment_pki",
]
