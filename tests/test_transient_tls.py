"""A TLS handshake cut short (the peer closed it: EOF in violation of the protocol) is worth
another attempt, as botocore's own retries treat it; a certificate that does not verify is
not: it will not verify on the next attempt either. Seen in a loaded bench run: one write of
32 met the EOF and the claim ended partial without trying it again."""

from __future__ import annotations

import ssl

from botocore.exceptions import SSLError

from mirror_vip.failures import is_transient

URL = "https://ec2.eu-west-1.amazonaws.com/"


def test_a_handshake_cut_short_is_transient() -> None:
    eof = ssl.SSLEOFError(
        8, "[SSL: UNEXPECTED_EOF_WHILE_READING] EOF occurred in violation of protocol"
    )
    assert is_transient(SSLError(endpoint_url=URL, error=eof))


def test_a_certificate_that_does_not_verify_is_not() -> None:
    bad = ssl.SSLCertVerificationError(
        1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: self-signed certificate"
    )
    assert not is_transient(SSLError(endpoint_url=URL, error=bad))
