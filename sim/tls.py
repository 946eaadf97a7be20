"""TLS for the fake AWS: a certificate authority made once per process, server certificates
it signs, and the server side of a TLS connection whose handshake flights wait out a modelled
network round trip.

The product trusts the authority as a user behind a corporate CA does: through AWS_CA_BUNDLE
(`Authority.ca_file`), with no other setting.

Why the handshake is driven through memory BIOs (ssl.SSLContext.wrap_bio) rather than
ssl.SSLSocket: on loopback a handshake takes a millisecond, where on a network each flight a
peer waits for costs a round trip. To charge that, the server must hold each of its flights
before it leaves, and only the memory-BIO form lets a caller see a flight before it is sent.
OpenSSL still does all the TLS; only when its bytes go out is ours. Which flights are held:
every one the server sends while the handshake is still going on (the client waits for it),
and, in TLS 1.2, the final one (ChangeCipherSpec and Finished: the client waits for that too).
TLS 1.3's last server output, its NewSessionTicket messages, is sent as soon as OpenSSL makes
it: the client does not wait for it (RFC 8446, 4.6.1). So a TLS 1.3 handshake costs one
round trip, TLS 1.2 two; the TCP handshake's round trip is charged by the caller, at accept.

After the handshake, `TlsStream` is the socket the HTTP handler reads and writes.
"""

from __future__ import annotations

import atexit
import datetime
import io
import ipaddress
import shutil
import socket
import ssl
import tempfile
import threading
from pathlib import Path
from typing import Any, Callable, Dict, FrozenSet, Iterable, Optional, Tuple

VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}
DEFAULT_NAMES = ("127.0.0.1", "localhost")
RECV_BYTES = 65536
VALID_DAYS = 2


class Authority:
    """A CA (EC P-256, valid two days) and the server certificates it issues, as PEM files in
    a private temporary directory removed at exit."""

    def __init__(self) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        self._x509, self._hashes, self._ec, self._oid = x509, hashes, ec, NameOID
        self.dir = Path(tempfile.mkdtemp(prefix="mvip-ca-"))
        atexit.register(shutil.rmtree, self.dir, True)
        self._key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mirror-vip test CA")])
        public = self._key.public_key()
        self._name = name
        self._ski = x509.SubjectKeyIdentifier.from_public_key(public)
        self._cert = (
            self._builder(name, public)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_key_usage(x509, cert_sign=True), critical=True)
            .add_extension(self._ski, critical=False)
            .sign(self._key, hashes.SHA256())
        )
        self.ca_file = str(self.dir / "ca.pem")
        _write(self.ca_file, self._pem(self._cert))
        self._issued: Dict[FrozenSet[str], Tuple[str, str]] = {}
        self._lock = threading.Lock()

    def _builder(self, subject: Any, public: Any) -> Any:
        now = datetime.datetime.now(datetime.timezone.utc)
        x509 = self._x509
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self._name)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
        )

    def _pem(self, cert: Any) -> bytes:
        from cryptography.hazmat.primitives.serialization import Encoding

        return bytes(cert.public_bytes(Encoding.PEM))

    def server_files(self, names: Iterable[str] = DEFAULT_NAMES) -> Tuple[str, str]:
        """(certificate file, key file) of a server certificate for NAMES (IP addresses or
        DNS names), issued once per set of names."""
        from cryptography.hazmat.primitives import serialization

        wanted = frozenset(names) | frozenset(DEFAULT_NAMES)
        with self._lock:
            found = self._issued.get(wanted)
            if found is not None:
                return found
            x509 = self._x509
            key = self._ec.generate_private_key(self._ec.SECP256R1())
            subject = x509.Name([x509.NameAttribute(self._oid.COMMON_NAME, "fake AWS")])
            cert = (
                self._builder(subject, key.public_key())
                .add_extension(x509.SubjectAlternativeName(_alt_names(x509, wanted)), False)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(_key_usage(x509, cert_sign=False), critical=True)
                .add_extension(
                    x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), False
                )
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
                .add_extension(
                    x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(self._ski),
                    False,
                )
                .sign(self._key, self._hashes.SHA256())
            )
            stem = self.dir / f"server-{len(self._issued)}"
            cert_file, key_file = f"{stem}.pem", f"{stem}.key"
            _write(cert_file, self._pem(cert))
            _write(
                key_file,
                key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                ),
            )
            self._issued[wanted] = (cert_file, key_file)
            return cert_file, key_file

    def server_context(self, version: str, names: Iterable[str] = DEFAULT_NAMES) -> ssl.SSLContext:
        """A server context offering exactly TLS VERSION ("1.2" or "1.3"), Python's defaults
        otherwise (TLS 1.3: two session tickets sent after each full handshake)."""
        if version not in VERSIONS:
            raise ValueError(f"TLS version {version!r}: one of {sorted(VERSIONS)}")
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = context.maximum_version = VERSIONS[version]
        context.load_cert_chain(*self.server_files(names))
        return context


_AUTHORITY: Optional[Authority] = None
_AUTHORITY_LOCK = threading.Lock()


def authority() -> Authority:
    """This process's CA, made on first use (a test session makes one)."""
    global _AUTHORITY
    with _AUTHORITY_LOCK:
        if _AUTHORITY is None:
            _AUTHORITY = Authority()
        return _AUTHORITY


def _key_usage(x509: Any, cert_sign: bool) -> Any:
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _alt_names(x509: Any, names: Iterable[str]) -> Any:
    found = []
    for name in sorted(names):
        try:
            found.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            found.append(x509.DNSName(name))
    return found


def _write(path: str, data: bytes) -> None:
    with open(path, "wb") as out:
        out.write(data)


# --- the server side of one connection -------------------------------------------------------


class Handshake:
    """What the server saw of one handshake."""

    def __init__(self) -> None:
        self.version: Optional[str] = None
        self.resumed = False
        self.flights_held = 0


def accept(
    raw: socket.socket, context: ssl.SSLContext, hold: Callable[[], bool]
) -> Tuple[TlsStream, Handshake]:
    """Run the server side of a TLS handshake on RAW; HOLD() is called before each flight the
    client waits for (it returns False to abandon the connection). An ssl.SSLError or OSError
    when the handshake fails (e.g. the client does not trust the certificate)."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_side=True)
    seen = Handshake()
    while True:
        try:
            tls.do_handshake()
            done = True
        except ssl.SSLWantReadError:
            done = False
        flight = outgoing.read()
        if flight:
            if not done or tls.version() != "TLSv1.3":  # a flight the client waits for
                seen.flights_held += 1
                if not hold():
                    raise ConnectionAbortedError("the fake AWS is stopping")
            raw.sendall(flight)
        if done:
            break
        chunk = raw.recv(RECV_BYTES)
        if not chunk:
            raise ConnectionResetError("the client closed the connection during the handshake")
        incoming.write(chunk)
    seen.version = tls.version()
    seen.resumed = bool(tls.session_reused)
    return TlsStream(raw, tls, incoming, outgoing), seen


class TlsStream:
    """The part of a socket's interface that socketserver's handlers use, over a TLS object
    driven through memory BIOs on RAW."""

    def __init__(
        self,
        raw: socket.socket,
        tls: ssl.SSLObject,
        incoming: ssl.MemoryBIO,
        outgoing: ssl.MemoryBIO,
    ) -> None:
        self.raw = raw
        self._tls = tls
        self._in = incoming
        self._out = outgoing

    def recv_into(self, buffer: Any, nbytes: int = 0) -> int:
        size = nbytes or len(buffer)
        while True:
            try:
                data = self._tls.read(size)
            except ssl.SSLWantReadError:
                self._flush()
                chunk = self.raw.recv(RECV_BYTES)
                if not chunk:
                    return 0
                self._in.write(chunk)
                continue
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                return 0
            self._flush()
            buffer[: len(data)] = data
            return len(data)

    def recv(self, size: int) -> bytes:
        buffer = bytearray(size)
        return bytes(buffer[: self.recv_into(buffer)])

    def sendall(self, data: Any) -> None:
        view = memoryview(data).cast("B")
        while view:
            written = self._tls.write(view)
            view = view[written:]
            self._flush()

    def _flush(self) -> None:
        pending = self._out.read()
        if pending:
            self.raw.sendall(pending)

    def makefile(self, mode: str = "rb", buffering: int = -1, **_: Any) -> Any:
        if mode != "rb":
            raise ValueError("TlsStream.makefile: only 'rb'")
        size = io.DEFAULT_BUFFER_SIZE if buffering is None or buffering < 0 else buffering
        return io.BufferedReader(_Reader(self), max(size, 1))

    def settimeout(self, value: Optional[float]) -> None:
        self.raw.settimeout(value)

    def setsockopt(self, *args: Any) -> None:
        self.raw.setsockopt(*args)

    def getpeername(self) -> Any:
        return self.raw.getpeername()

    def fileno(self) -> int:
        return self.raw.fileno()

    def shutdown(self, how: int) -> None:
        self.raw.shutdown(how)

    def close(self) -> None:
        self.raw.close()


class _Reader(io.RawIOBase):
    def __init__(self, stream: TlsStream) -> None:
        self._stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        return self._stream.recv_into(buffer)
