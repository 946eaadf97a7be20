"""The simulated VPC as the fake AWS sees it: VPC, subnets, route tables, the two members.

Two ways to build it, same `World`:
- `build_from_template`: the project's CloudFormation template (`docs/aws/mirror-vip.yaml`)
  through moto's `create_stack`. moto builds the VPC, subnets, tables, VIP routes, role and
  instances, but drops three things that matter here, so we apply them afterwards with EC2 calls:
  `SourceDestCheck: false` on the instances (ModifyNetworkInterfaceAttribute on their ENIs), the
  route tables' `Tags` (CreateTags: the product selects tables by the `mirror-vip` tag), and the
  `SubnetRouteTableAssociation`s (moto records them aside, so DescribeRouteTables shows none:
  AssociateRouteTable);
- `build_plain`: the same layout with plain EC2 calls, when there is no template or moto cannot
  build it.

The layout follows the seed article (a /24 VPC, a /26 per availability zone), with the client in
the template's third (arbiter) subnet and the VIP outside the VPC CIDR (AWS's recommendation).
Every table the template tags starts with its VIP route on member A, as the stack creates it.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

DEFAULT_REGION = "eu-west-1"
AMI = "ami-0123456789abcdef0"  # moto runs any image id; describing its catalogue costs seconds
TEMPLATE = Path(__file__).resolve().parent.parent / "docs" / "aws" / "mirror-vip.yaml"
STACK = "mvip-sim"
_MAC = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}")


@dataclass(frozen=True)
class Layout:
    """The addresses of the simulated VPC (template parameters, or the plain build's plan)."""

    region: str = DEFAULT_REGION
    vpc_cidr: str = "10.109.10.0/24"
    subnet_a: str = "10.109.10.0/26"
    subnet_b: str = "10.109.10.64/26"
    subnet_client: str = "10.109.10.128/26"  # the template's arbiter subnet: clients live there
    member_a_ip: str = "10.109.10.10"
    member_b_ip: str = "10.109.10.74"
    client_ip: str = "10.109.10.140"
    vip: str = "192.168.255.10"
    name: str = STACK

    def template_parameters(self) -> Dict[str, str]:
        return {
            "VpcCidr": self.vpc_cidr,
            "MemberSubnetACidr": self.subnet_a,
            "MemberSubnetBCidr": self.subnet_b,
            "ArbiterSubnetCidr": self.subnet_client,
            "ClientCidr": self.vpc_cidr,
            "AvailabilityZoneA": self.region + "a",
            "AvailabilityZoneB": self.region + "b",
            "AvailabilityZoneArbiter": self.region + "c",
            "VipAddress": self.vip,
            "ImageId": AMI,
            "MemberAPrivateIp": self.member_a_ip,
            "MemberBPrivateIp": self.member_b_ip,
            "CreateNatGateway": "false",
            "CreateEc2Endpoint": "true",
            "EnableSessionManager": "false",
        }


@dataclass
class Member:
    name: str
    instance_id: str
    eni: str
    mac: str
    private_ip: str
    subnet_id: str
    subnet_cidr: str
    availability_zone: str

    @property
    def gateway(self) -> str:
        return gateway_of(self.subnet_cidr)


@dataclass
class World:
    """What a test or the drill needs to know about the fake AWS's VPC."""

    region: str
    vpc_id: str
    vpc_cidr: str
    vip: str
    members: Dict[str, Member]
    client_subnet_id: str
    client_subnet_cidr: str
    client_ip: str
    client_table: str  # the table the client's subnet uses: the router follows this one
    tables: List[str] = field(default_factory=list)  # the tables the product selects
    settings: Dict[str, Any] = field(default_factory=dict)  # what IRIS's MirrorVip.Config holds
    built_with: str = "plain EC2 calls"

    @property
    def destination(self) -> str:
        return f"{self.vip}/32"

    def member_by_target(self, target: Optional[str]) -> Optional[Member]:
        """The member a route target (its ENI id, or its instance id) belongs to."""
        for member in self.members.values():
            if target in (member.eni, member.instance_id):
                return member
        return None

    def settings_json(self, **extra: Any) -> str:
        return json.dumps({**self.settings, **extra})


def gateway_of(cidr: str) -> str:
    """AWS reserves a subnet's first address + 1 for the VPC router; so do we."""
    return str(ipaddress.ip_network(cidr).network_address + 1)


def prefixlen(cidr: str) -> int:
    return ipaddress.ip_network(cidr).prefixlen


def build(ec2: Any, cfn: Any = None, layout: Layout = Layout()) -> World:
    """From the template when it exists and moto builds it, else with plain EC2 calls."""
    if cfn is not None and TEMPLATE.exists():
        try:
            return build_from_template(ec2, cfn, layout)
        except Exception as exc:
            world = build_plain(ec2, layout)
            world.built_with = f"plain EC2 calls (template failed in moto: {exc})"
            return world
    return build_plain(ec2, layout)


# --- from the CloudFormation template --------------------------------------------------------


def build_from_template(ec2: Any, cfn: Any, layout: Layout = Layout()) -> World:
    body = TEMPLATE.read_text(encoding="utf-8")
    cfn.create_stack(
        StackName=layout.name,
        TemplateBody=body,
        Parameters=[
            {"ParameterKey": k, "ParameterValue": v}
            for k, v in layout.template_parameters().items()
        ],
        Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"],
    )
    stack = cfn.describe_stacks(StackName=layout.name)["Stacks"][0]
    if stack["StackStatus"] != "CREATE_COMPLETE":
        raise RuntimeError(f"stack {stack['StackStatus']}: {stack.get('StackStatusReason')}")
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    resources = {
        r["LogicalResourceId"]: r["PhysicalResourceId"]
        for r in cfn.list_stack_resources(StackName=layout.name)["StackResourceSummaries"]
    }
    template = load_template(body)
    _apply_table_tags(ec2, template, resources, layout.name)
    _apply_associations(ec2, template, resources)
    members = {
        "memberA": _member(ec2, "memberA", outputs["MemberAInstanceId"]),
        "memberB": _member(ec2, "memberB", outputs["MemberBInstanceId"]),
    }
    vpc_id = outputs["VpcId"]
    client_subnet = resources["ArbiterSubnet"]
    settings = json.loads(outputs["MirrorVipSettings"])
    world = World(
        region=layout.region,
        vpc_id=vpc_id,
        vpc_cidr=layout.vpc_cidr,
        vip=outputs["VipAddress"],
        members=members,
        client_subnet_id=client_subnet,
        client_subnet_cidr=layout.subnet_client,
        client_ip=layout.client_ip,
        client_table=table_for_subnet(ec2, vpc_id, client_subnet),
        tables=_tagged_tables(ec2, vpc_id, settings.get("route_table_tag")),
        settings=settings,
        built_with=f"CloudFormation ({TEMPLATE.name}, stack {layout.name}, via moto)",
    )
    disable_source_dest_check(ec2, world)
    return world


def load_template(text: str) -> Dict[str, Any]:
    """The template as data, CloudFormation's short tags (!Ref, !Sub...) as {"Fn::X": ...}."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    def short_form(loader: Any, suffix: str, node: Any) -> Dict[str, Any]:
        if isinstance(node, yaml.ScalarNode):
            value: Any = loader.construct_scalar(node)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)
        if suffix == "GetAtt" and isinstance(value, str):
            value = value.split(".", 1)
        return {("Ref" if suffix == "Ref" else "Fn::" + suffix): value}

    Loader.add_multi_constructor("!", short_form)
    data: Dict[str, Any] = yaml.load(text, Loader=Loader)  # noqa: S506 - SafeLoader subclass
    return data


def _resolve(value: Any, stack: str, resources: Optional[Dict[str, str]] = None) -> Optional[str]:
    """A string, !Ref AWS::StackName or a resource's logical id, or !Sub over ${AWS::StackName};
    None for anything else."""
    if isinstance(value, str):
        return value
    ref = value.get("Ref") if isinstance(value, dict) else None
    if ref == "AWS::StackName":
        return stack
    if isinstance(ref, str) and resources and ref in resources:
        return resources[ref]
    sub = value.get("Fn::Sub") if isinstance(value, dict) else None
    if isinstance(sub, str):
        text = sub.replace("${AWS::StackName}", stack)
        return None if "${" in text else text
    return None


def _apply_table_tags(
    ec2: Any, template: Dict[str, Any], resources: Dict[str, str], stack: str
) -> None:
    for logical, spec in template.get("Resources", {}).items():
        if spec.get("Type") != "AWS::EC2::RouteTable" or logical not in resources:
            continue
        tags = []
        for tag in spec.get("Properties", {}).get("Tags", []):
            value = _resolve(tag.get("Value"), stack)
            if value is not None:
                tags.append({"Key": str(tag["Key"]), "Value": value})
        if tags:
            ec2.create_tags(Resources=[resources[logical]], Tags=tags)


def _apply_associations(ec2: Any, template: Dict[str, Any], resources: Dict[str, str]) -> None:
    for logical, spec in template.get("Resources", {}).items():
        if spec.get("Type") != "AWS::EC2::SubnetRouteTableAssociation" or logical not in resources:
            continue
        props = spec.get("Properties", {})
        subnet = _resolve(props.get("SubnetId"), "", resources)
        table = _resolve(props.get("RouteTableId"), "", resources)
        if subnet and table:
            ec2.associate_route_table(RouteTableId=table, SubnetId=subnet)


def _tagged_tables(ec2: Any, vpc_id: str, tag: Optional[str]) -> List[str]:
    filters = [{"Name": "vpc-id", "Values": [vpc_id]}]
    if tag:
        key, _, value = tag.partition("=")
        filters.append({"Name": f"tag:{key}", "Values": [value]})
    found = ec2.describe_route_tables(Filters=filters)["RouteTables"]
    return sorted(t["RouteTableId"] for t in found)


def _member(ec2: Any, name: str, instance_id: str) -> Member:
    instance = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
    subnet = ec2.describe_subnets(SubnetIds=[instance["SubnetId"]])["Subnets"][0]
    eni = instance["NetworkInterfaces"][0]
    return Member(
        name=name,
        instance_id=instance_id,
        eni=eni["NetworkInterfaceId"],
        mac=interface_mac(eni),
        private_ip=instance["PrivateIpAddress"],
        subnet_id=instance["SubnetId"],
        subnet_cidr=subnet["CidrBlock"],
        availability_zone=instance["Placement"]["AvailabilityZone"],
    )


def interface_mac(eni: Dict[str, Any]) -> str:
    """The MAC the member's eth0 carries and its IMDS names: moto's for the ENI when an
    interface can carry it (unicast, well formed); else one made from the ENI id, locally
    administered and unique. moto before 5.2 gives every instance 1b:2b:3c:4d:5e:6f (a
    multicast address) and ENIs malformed ones (`02:00:00:1502x:...`); the product never asks
    EC2 for a MAC, only IMDS, which the simulation serves from this."""
    mac = str(eni.get("MacAddress") or "").lower()
    if _MAC.fullmatch(mac) and not int(mac[:2], 16) & 1:
        return mac
    digest = hashlib.sha256(str(eni["NetworkInterfaceId"]).encode()).hexdigest()
    return "02:" + ":".join(digest[i : i + 2] for i in range(0, 10, 2))


# --- with plain EC2 calls --------------------------------------------------------------------


def build_plain(ec2: Any, layout: Layout = Layout()) -> World:
    """The template's network with plain EC2 calls: three subnets, each with a tagged table
    whose VIP route points at member A; the main table is untagged and has no VIP route."""
    tag = ("mirror-vip", layout.name)
    vpc_id = ec2.create_vpc(CidrBlock=layout.vpc_cidr)["Vpc"]["VpcId"]
    plans: List[Tuple[str, str, str]] = [
        ("memberA", layout.subnet_a, "a"),
        ("memberB", layout.subnet_b, "b"),
        ("client", layout.subnet_client, "c"),
    ]
    subnets: Dict[str, str] = {}
    tables: List[str] = []
    for name, cidr, zone in plans:
        subnet_id = ec2.create_subnet(
            VpcId=vpc_id, CidrBlock=cidr, AvailabilityZone=layout.region + zone
        )["Subnet"]["SubnetId"]
        table = ec2.create_route_table(VpcId=vpc_id)["RouteTable"]["RouteTableId"]
        ec2.associate_route_table(RouteTableId=table, SubnetId=subnet_id)
        ec2.create_tags(
            Resources=[table],
            Tags=[
                {"Key": "Name", "Value": f"{layout.name}-{name}"},
                {"Key": tag[0], "Value": tag[1]},
            ],
        )
        subnets[name] = subnet_id
        tables.append(table)
    members = {}
    for name, ip in (("memberA", layout.member_a_ip), ("memberB", layout.member_b_ip)):
        instance_id = ec2.run_instances(
            ImageId=AMI,
            MinCount=1,
            MaxCount=1,
            InstanceType="m6i.large",
            SubnetId=subnets[name],
            PrivateIpAddress=ip,
        )["Instances"][0]["InstanceId"]
        members[name] = _member(ec2, name, instance_id)
    world = World(
        region=layout.region,
        vpc_id=vpc_id,
        vpc_cidr=layout.vpc_cidr,
        vip=layout.vip,
        members=members,
        client_subnet_id=subnets["client"],
        client_subnet_cidr=layout.subnet_client,
        client_ip=layout.client_ip,
        client_table=tables[2],
        tables=sorted(tables),
        settings={"vip": layout.vip, "route_table_tag": f"{tag[0]}={tag[1]}"},
    )
    point_all(ec2, world, "memberA")
    disable_source_dest_check(ec2, world)
    return world


# --- shared ------------------------------------------------------------------------------------


def disable_source_dest_check(ec2: Any, world: World) -> None:
    for member in world.members.values():
        ec2.modify_network_interface_attribute(
            NetworkInterfaceId=member.eni, SourceDestCheck={"Value": False}
        )


def table_for_subnet(ec2: Any, vpc_id: str, subnet_id: str) -> str:
    """The table a subnet uses: its explicit association, else the VPC's main table."""
    found = ec2.describe_route_tables(
        Filters=[{"Name": "association.subnet-id", "Values": [subnet_id]}]
    )["RouteTables"]
    if found:
        return str(found[0]["RouteTableId"])
    main = ec2.describe_route_tables(
        Filters=[
            {"Name": "vpc-id", "Values": [vpc_id]},
            {"Name": "association.main", "Values": ["true"]},
        ]
    )["RouteTables"]
    return str(main[0]["RouteTableId"])


def point_all(ec2: Any, world: World, member: str, tables: Optional[List[str]] = None) -> None:
    """Give every table (of TABLES) a VIP route to MEMBER's ENI (set-up only: straight to moto)."""
    eni = world.members[member].eni
    for table in tables or world.tables:
        params = {
            "RouteTableId": table,
            "DestinationCidrBlock": world.destination,
            "NetworkInterfaceId": eni,
        }
        try:
            ec2.replace_route(**params)
        except Exception:
            ec2.create_route(**params)
