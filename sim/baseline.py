"""The baseline: the seed article's claim (delete-then-create), written anew for comparison.

What it does, as the article describes: read the VIP off the `eth0:1` alias, get the instance id
and region from instance metadata, then with boto3's resource API find the instance, its VPC and
every route table of that VPC, and for each table in turn *delete* the VIP's route (ignoring
"not found") and *create* it again, pointing at the instance's first network interface. Between
the delete and the create the table has no route for the VIP: that is the window the drill shows.

Differences from the article, none of which change the algorithm: the metadata calls use IMDSv2
(our emulator, like many accounts, refuses IMDSv1); the destination is VIP/32 (the article passes
the alias's address with its prefix length); errors other than "not found" stop the run, as an
uncaught exception stopped the article's code, and are reported as JSON.

    python -m sim.baseline            (inside a member: prints a JSON report, exit 0 or 1)
    claim(session, instance_id, vip)  (in process: the benchmark uses this)
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from typing import Any, Dict, List, Optional

IMDS = "http://169.254.169.254"
INTERFACE, LABEL = "eth0", "eth0:1"


def vip_from_interface(interface: str = INTERFACE, label: str = LABEL) -> str:
    """The address labelled LABEL on INTERFACE, from `ip -4 addr show dev INTERFACE`."""
    text = subprocess.run(
        ["ip", "-4", "addr", "show", "dev", interface],
        capture_output=True,
        text=True,
        check=True,
        timeout=5,
    ).stdout
    for line in text.splitlines():
        words = line.split()
        if words and words[0] == "inet" and words[-1] == label:
            return words[1].split("/")[0]
    raise ValueError(f"no address labelled {label} on {interface}")


def metadata(path: str, timeout: float = 2.0) -> str:
    token_req = urllib.request.Request(
        f"{IMDS}/latest/api/token",
        method="PUT",
        headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"},
    )
    with urllib.request.urlopen(token_req, timeout=timeout) as resp:
        token = resp.read().decode()
    req = urllib.request.Request(
        f"{IMDS}/latest/meta-data/{path}", headers={"X-aws-ec2-metadata-token": token}
    )
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return str(resp.read().decode())


def claim(session: Any, instance_id: str, vip: str) -> Dict[str, Any]:
    """Delete-then-create the VIP's /32 route in every route table of the instance's VPC,
    one table after the other. Returns what it did, table by table."""
    from botocore.exceptions import ClientError

    destination = f"{vip}/32"
    ec2 = session.resource("ec2")
    client = session.client("ec2")
    instance = ec2.Instance(instance_id)
    vpc = ec2.Vpc(instance.vpc.id)
    eni = instance.network_interfaces[0].id
    done: List[Dict[str, Optional[str]]] = []
    for table in vpc.route_tables.all():
        deleted: Optional[str] = "deleted"
        try:
            client.delete_route(DestinationCidrBlock=destination, RouteTableId=table.id)
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "InvalidRoute.NotFound":
                raise
            deleted = None
        client.create_route(
            DestinationCidrBlock=destination, NetworkInterfaceId=eni, RouteTableId=table.id
        )
        done.append({"id": table.id, "deleted": deleted, "created": eni})
    return {"eni": eni, "destination": destination, "route_tables": done}


def main() -> int:
    import boto3

    started = time.monotonic()
    report: Dict[str, Any] = {"ok": False, "algorithm": "delete-then-create (seed article)"}
    try:
        vip = vip_from_interface()
        instance_id = metadata("instance-id")
        region = metadata("placement/region")
        report.update(claim(boto3.Session(region_name=region), instance_id, vip))
        report["ok"] = True
    except Exception as exc:
        report["error"] = f"{type(exc).__name__}: {exc}"
    report["elapsed_s"] = round(time.monotonic() - started, 3)
    print(json.dumps(report))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
