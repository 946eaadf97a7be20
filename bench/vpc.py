"""The benchmark's VPCs: one per route-table count N, each with N route tables (the main one
included: the baseline writes every table of the VPC, ours selects them all), two members, and
the VIP's /32 route in every table on member A. The claim runs as member B.

The member's interface is the host's loopback (`lo`, MAC 00:00:00:00:00:00): the product reads
its MAC from sysfs and its addresses with `ip`, as on EC2, and the IMDS emulator answers for that
MAC with member B's ENI. No namespaces: everything runs on loopback.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any, Dict, List

from sim.fakeaws import FakeAws
from sim.imds import Identity

VIP = "192.168.255.10"
DESTINATION = f"{VIP}/32"
INTERFACE = "lo"
LOOPBACK_MAC = "00:00:00:00:00:00"
AMI = "ami-0123456789abcdef0"


@dataclass
class Vpc:
    n: int
    vpc_id: str
    tables: List[str]
    eni_a: str  # where every route points before a run
    eni_b: str  # the claiming member's ENI
    instance_b: str
    identity: Identity  # member B, as IMDS tells it

    @property
    def region(self) -> str:
        return self.identity.region


def build(aws: FakeAws, n: int, index: int) -> Vpc:
    """A VPC with N route tables (main + N-1), straight to moto (not recorded)."""
    ec2 = aws.ec2
    cidr = ipaddress.ip_network(f"10.{100 + index}.0.0/24")
    vpc_id = ec2.create_vpc(CidrBlock=str(cidr))["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc_id, CidrBlock=str(block), AvailabilityZone=aws.region + zone)[
            "Subnet"
        ]
        for block, zone in zip(cidr.subnets(new_prefix=26), "ab")
    ]
    instances = []
    for subnet in subnets:
        found = ec2.run_instances(
            ImageId=AMI,
            MinCount=1,
            MaxCount=1,
            InstanceType="m6i.large",
            SubnetId=subnet["SubnetId"],
        )["Instances"][0]
        instances.append(found)
    main = ec2.describe_route_tables(
        Filters=[
            {"Name": "vpc-id", "Values": [vpc_id]},
            {"Name": "association.main", "Values": ["true"]},
        ]
    )["RouteTables"][0]["RouteTableId"]
    tables = [main] + [
        ec2.create_route_table(VpcId=vpc_id)["RouteTable"]["RouteTableId"] for _ in range(n - 1)
    ]
    eni_a, eni_b = (i["NetworkInterfaces"][0]["NetworkInterfaceId"] for i in instances)
    b = instances[1]
    identity = Identity(
        instance_id=b["InstanceId"],
        region=aws.region,
        availability_zone=b["Placement"]["AvailabilityZone"],
        mac=LOOPBACK_MAC,
        eni=eni_b,
        vpc_id=vpc_id,
        subnet_id=subnets[1]["SubnetId"],
        private_ip=b["PrivateIpAddress"],
        vpc_cidr=str(cidr),
        subnet_cidr=subnets[1]["CidrBlock"],
    )
    vpc = Vpc(n, vpc_id, tables, eni_a, eni_b, b["InstanceId"], identity)
    for table in tables:
        ec2.create_route(
            RouteTableId=table, DestinationCidrBlock=DESTINATION, NetworkInterfaceId=eni_a
        )
    return vpc


def point_at_a(aws: FakeAws, vpc: Vpc) -> None:
    """Every table's VIP route back on member A (straight to moto: not recorded)."""
    for table in vpc.tables:
        params: Dict[str, Any] = {
            "RouteTableId": table,
            "DestinationCidrBlock": DESTINATION,
            "NetworkInterfaceId": vpc.eni_a,
        }
        try:
            aws.ec2.replace_route(**params)
        except Exception:
            aws.ec2.create_route(**params)


def routes(aws: FakeAws, vpc: Vpc) -> Dict[str, Any]:
    found = aws.routes_to(DESTINATION, vpc.vpc_id)
    return {t: found.get(t) for t in vpc.tables}
