"""Where moto answers otherwise than AWS, the proxy answers as AWS does, at the HTTP layer
(DESIGN.md, "Test doubles and their gaps"). What it needs to know it asks moto through moto's
own public HTTP API, as any client would; it never reads moto's in-process state.

- `DryRun=true`: moto performs the change; AWS checks permission and answers DryRunOperation
  (HTTP 412) or UnauthorizedOperation, and changes nothing. The proxy answers it without
  forwarding (sim/fakeaws.py).
- `CreateRoute` onto a destination the table already routes: moto overwrites the route; AWS
  answers RouteAlreadyExists. The proxy asks `route_exists` (a DescribeRouteTables of its
  own) under the table's write lock, and refuses as AWS does.
- A route whose network interface was deleted: moto keeps showing it `active`; AWS shows it
  `blackhole`. The proxy asks which of the interfaces a DescribeRouteTables answer names
  still exist (a DescribeNetworkInterfaces of its own) and rewrites the routes to the others
  (`mark_blackholes`).

Each ask is one request to moto on loopback (~3-8 ms on a shared 2-core machine); the ones it
adds are counted in the fake AWS's own time, which the benchmark reports beside its figures.
"""

from __future__ import annotations

import http.client
import re
from typing import List, Sequence, Set, Tuple
from urllib.parse import urlencode

EC2_API_VERSION = "2016-11-15"
ASK_TIMEOUT_S = 30.0

_ENI = re.compile(rb"<networkInterfaceId>([^<]+)</networkInterfaceId>")
_INNERMOST_ITEM = re.compile(rb"<item>((?:(?!<item>).)*?)</item>", re.DOTALL)
_ACTIVE = b"<state>active</state>"
_BLACKHOLE = b"<state>blackhole</state>"


class MotoApi:
    """EC2 query requests to moto's server, signed as the client's request was (moto reads
    the region and account from the Authorization header; it does not check signatures)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port

    def ask(
        self, action: str, params: Sequence[Tuple[str, str]], authorization: str
    ) -> Tuple[int, bytes]:
        body = urlencode([("Action", action), ("Version", EC2_API_VERSION), *params])
        conn = http.client.HTTPConnection(self.host, self.port, timeout=ASK_TIMEOUT_S)
        try:
            conn.request(
                "POST",
                "/",
                body=body,
                headers={
                    "Authorization": authorization,
                    "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
                },
            )
            answer = conn.getresponse()
            return answer.status, answer.read()
        finally:
            conn.close()


def route_exists(moto: MotoApi, table: str, destination: str, authorization: str) -> bool:
    """Whether TABLE has a route to DESTINATION. False when moto cannot tell (the table
    missing: moto then answers the CreateRoute with InvalidRouteTableID.NotFound itself)."""
    status, payload = moto.ask(
        "DescribeRouteTables",
        [
            ("Filter.1.Name", "route-table-id"),
            ("Filter.1.Value.1", table),
            ("Filter.2.Name", "route.destination-cidr-block"),
            ("Filter.2.Value.1", destination),
        ],
        authorization,
    )
    return status == 200 and f"<routeTableId>{table}</routeTableId>".encode() in payload


def existing_interfaces(moto: MotoApi, enis: Sequence[str], authorization: str) -> Set[str]:
    """Those of ENIS that moto still has; all of them when moto cannot tell."""
    params: List[Tuple[str, str]] = [("Filter.1.Name", "network-interface-id")]
    params += [(f"Filter.1.Value.{i}", eni) for i, eni in enumerate(enis, 1)]
    status, payload = moto.ask("DescribeNetworkInterfaces", params, authorization)
    if status != 200:
        return set(enis)
    return {m.decode() for m in _ENI.findall(payload)}


def mark_blackholes(moto: MotoApi, payload: bytes, authorization: str) -> bytes:
    """A DescribeRouteTables answer with the routes to deleted interfaces in state blackhole."""
    named = sorted({m.decode() for m in _ENI.findall(payload)})
    if not named:
        return payload
    gone = set(named) - existing_interfaces(moto, named, authorization)
    if not gone:
        return payload

    def rewrite(item: re.Match[bytes]) -> bytes:
        found = _ENI.search(item.group(1))
        if found is None or found.group(1).decode() not in gone:
            return item.group(0)
        return item.group(0).replace(_ACTIVE, _BLACKHOLE)

    return _INNERMOST_ITEM.sub(rewrite, payload)
