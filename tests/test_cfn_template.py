"""docs/aws/mirror-vip.yaml: lint-clean, buildable by moto, and it builds what matters.

cfn-lint runs through its Python API over several regions. moto's CloudFormation then
creates the stack in process and the test reads back what it built: two member subnets in two
zones, the VIP route to member A in every member table, the role carrying
docs/aws/iam-policy.json (rendered for this VPC) and the instance profile on both members.
What moto ignores (SourceDestCheck, MetadataOptions, route table tags, managed policies) is
asserted on the template itself. The user data is checked against docs/host/.
"""

from __future__ import annotations

import ast
import base64
import ipaddress
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any, Dict, Iterator, List

import boto3
import pytest
import yaml
from cfnlint.api import ManualArgs, lint_file
from cfnlint.decode import cfn_yaml
from moto import mock_aws

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "docs" / "aws" / "mirror-vip.yaml"
POLICY = ROOT / "docs" / "aws" / "iam-policy.json"
NETPLAN = ROOT / "docs" / "host" / "netplan" / "60-mirror-vip.yaml"
LINT_REGIONS = ["us-east-1", "eu-west-1", "eu-central-1", "ap-southeast-2"]
ACCOUNT = "123456789012"  # moto's default account
MEMBERS = ("MemberA", "MemberB")


@pytest.fixture(scope="module")
def template() -> Dict[str, Any]:
    return dict(cfn_yaml.loads(TEMPLATE.read_text(encoding="utf-8"), str(TEMPLATE)))


def resources(template: Dict[str, Any], kind: str) -> Dict[str, Dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def default(template: Dict[str, Any], name: str) -> str:
    return str(template["Parameters"][name]["Default"])


# --- static -----------------------------------------------------------------------------------


def test_cfn_lint_is_clean() -> None:
    matches = lint_file(TEMPLATE, ManualArgs(regions=LINT_REGIONS))
    assert not matches, "\n".join(str(m) for m in matches)


def test_default_vip_is_outside_the_vpc_and_every_subnet(template: Dict[str, Any]) -> None:
    vip = ipaddress.ip_address(default(template, "VipAddress"))
    assert vip.is_private, "an overlay IP is a private address"
    for name in ("VpcCidr", "MemberSubnetACidr", "MemberSubnetBCidr", "ArbiterSubnetCidr"):
        assert vip not in ipaddress.ip_network(default(template, name)), name
    vpc = ipaddress.ip_network(default(template, "VpcCidr"))
    for name in ("MemberSubnetACidr", "MemberSubnetBCidr", "ArbiterSubnetCidr", "PublicSubnetCidr"):
        assert ipaddress.ip_network(default(template, name)).subnet_of(vpc), name  # type: ignore[arg-type]


def test_members_are_set_up_for_the_vip(template: Dict[str, Any]) -> None:
    """What moto does not model: checked on the template."""
    instances = resources(template, "AWS::EC2::Instance")
    for name in MEMBERS:
        props = instances[name]["Properties"]
        assert props["SourceDestCheck"] is False, f"{name}: packets to the VIP would be dropped"
        assert props["MetadataOptions"]["HttpTokens"] == "required", f"{name}: IMDSv2 only"
        assert props["IamInstanceProfile"] == {"Ref": "MemberInstanceProfile"}
        assert props["SecurityGroupIds"] == [{"Ref": "MemberSecurityGroup"}]
    assert instances["MemberA"]["Properties"]["SubnetId"] == {"Ref": "MemberSubnetA"}
    assert instances["MemberB"]["Properties"]["SubnetId"] == {"Ref": "MemberSubnetB"}
    assert "IamInstanceProfile" not in instances["Arbiter"]["Properties"], "the arbiter needs none"


def test_every_vip_table_is_tagged_for_route_table_tag(template: Dict[str, Any]) -> None:
    routes = resources(template, "AWS::EC2::Route")
    vip_routes = {
        k: v for k, v in routes.items() if v["Properties"]["DestinationCidrBlock"] != "0.0.0.0/0"
    }
    assert set(vip_routes) == {"VipRouteA", "VipRouteB", "VipRouteArbiter"}
    tables = resources(template, "AWS::EC2::RouteTable")
    for route in vip_routes.values():
        assert route["Properties"]["DestinationCidrBlock"] == {"Fn::Sub": "${VipAddress}/32"}
        assert route["Properties"]["InstanceId"] == {"Ref": "MemberA"}
        table = tables[route["Properties"]["RouteTableId"]["Ref"]]
        tags = {t["Key"]: t["Value"] for t in table["Properties"]["Tags"]}
        assert tags["mirror-vip"] == {"Ref": "AWS::StackName"}
    public = tables["PublicRouteTable"]["Properties"]["Tags"]
    assert "mirror-vip" not in {t["Key"] for t in public}, "no clients in the public subnet"


def test_each_private_subnet_uses_its_own_vip_table(template: Dict[str, Any]) -> None:
    """On the template: moto records these associations apart from its route tables."""
    pairs = {
        (v["Properties"]["SubnetId"]["Ref"], v["Properties"]["RouteTableId"]["Ref"])
        for v in resources(template, "AWS::EC2::SubnetRouteTableAssociation").values()
    }
    assert {
        ("MemberSubnetA", "RouteTableA"),
        ("MemberSubnetB", "RouteTableB"),
        ("ArbiterSubnet", "RouteTableArbiter"),
    } <= pairs


def test_session_manager_policy_is_optional(template: Dict[str, Any]) -> None:
    arns = template["Resources"]["MemberRole"]["Properties"]["ManagedPolicyArns"]
    condition, enabled, disabled = arns["Fn::If"]
    assert condition == "SessionManagerEnabled" and disabled == {"Ref": "AWS::NoValue"}
    assert enabled[0]["Fn::Sub"].endswith(":iam::aws:policy/AmazonSSMManagedInstanceCore")


def user_data(template: Dict[str, Any], name: str) -> str:
    """The member's user data script as the instance receives it, for the default VIP."""
    text = template["Resources"][name]["Properties"]["UserData"]["Fn::Base64"]["Fn::Sub"]
    text = text.replace("${VipAddress}", default(template, "VipAddress"))
    assert "${AWS::" not in text and not re.search(r"\$\{[A-Z][A-Za-z]+\}", text), text
    return str(re.sub(r"\$\{!(\w+)\}", r"${\1}", text))


def test_user_data_is_valid_bash_and_the_same_on_both_members(
    template: Dict[str, Any], tmp_path: Path
) -> None:
    script = user_data(template, "MemberA")
    assert script == user_data(template, "MemberB")
    assert script.startswith("#!/bin/bash\n")
    path = tmp_path / "user-data.sh"
    path.write_text(script, encoding="utf-8")
    subprocess.run(["bash", "-n", str(path)], check=True, timeout=10)
    if shutil.which("shellcheck"):
        subprocess.run(["shellcheck", "-S", "warning", str(path)], check=True, timeout=60)


def test_user_data_writes_the_documented_host_configuration(template: Dict[str, Any]) -> None:
    script = user_data(template, "MemberA")
    heredoc = re.search(r"<<EOF\n(.*?)\nEOF\n", script, re.S)
    assert heredoc, "the netplan branch writes a file with a heredoc"
    rendered = (
        heredoc.group(1)
        .replace("${IFACE}", "ens5")
        .replace("${VIP}", default(template, "VipAddress"))
        .replace("${LABEL}", "ens5:1")
    )
    assert yaml.safe_load(rendered) == yaml.safe_load(NETPLAN.read_text(encoding="utf-8"))
    assert 'LABEL="${IFACE}:1"' in script, "mirror-vip's default label is <interface>:1"
    assert '+ipv4.addresses "${VIP}/32"' in script, "NetworkManager: appended to the profile"
    assert r"[Address]\nAddress=%s/32\nLabel=%s\n" in script, "networkd: a drop-in"


# --- built by moto ----------------------------------------------------------------------------


def build(region: str, parameters: Dict[str, str]) -> Dict[str, Any]:
    """Create the stack in moto; return what the tests read back."""
    ec2 = boto3.client("ec2", region_name=region)
    image = ec2.describe_images(Owners=["amazon"], MaxResults=5)["Images"][0]["ImageId"]
    cfn = boto3.client("cloudformation", region_name=region)
    given = {"ImageId": image, **parameters}
    cfn.create_stack(
        StackName="mvtest",
        TemplateBody=TEMPLATE.read_text(encoding="utf-8"),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in given.items()],
        Capabilities=["CAPABILITY_IAM"],
    )
    stack = cfn.describe_stacks(StackName="mvtest")["Stacks"][0]
    listed = cfn.list_stack_resources(StackName="mvtest")["StackResourceSummaries"]
    return {
        "region": region,
        "ec2": ec2,
        "iam": boto3.client("iam", region_name=region),
        "stack": stack,
        "outputs": {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])},
        "ids": {r["LogicalResourceId"]: r["PhysicalResourceId"] for r in listed},
    }


@pytest.fixture(scope="module")
def moto_env() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        for key in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_EC2"):
            patch.delenv(key, raising=False)
        patch.setenv("AWS_ACCESS_KEY_ID", "testing")
        patch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        with mock_aws():
            yield


@pytest.fixture(scope="module")
def stack(moto_env: None) -> Dict[str, Any]:
    # moto's Fn::GetAZs ignores the stack's region, so the default build runs in us-east-1.
    return build("us-east-1", {})


def instance(built: Dict[str, Any], name: str) -> Dict[str, Any]:
    found = built["ec2"].describe_instances(InstanceIds=[built["ids"][name]])
    return dict(found["Reservations"][0]["Instances"][0])


def vip_targets(built: Dict[str, Any], vip: str) -> Dict[str, List[str]]:
    """route table id -> targets of its VIP route (instance or ENI id)."""
    vpc = built["outputs"]["VpcId"]
    tables = built["ec2"].describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vpc]}])
    found: Dict[str, List[str]] = {}
    for table in tables["RouteTables"]:
        for route in table["Routes"]:
            if route.get("DestinationCidrBlock") == f"{vip}/32":
                assert route["State"] == "active"
                found[table["RouteTableId"]] = [
                    route[k] for k in ("InstanceId", "NetworkInterfaceId") if route.get(k)
                ]
    return found


def policy_document(value: Any) -> Dict[str, Any]:
    """A role policy as moto returns it: a dict, JSON text, or (from CloudFormation) a repr."""
    if isinstance(value, dict):
        return value
    try:
        return dict(json.loads(value))
    except json.JSONDecodeError:
        return dict(ast.literal_eval(value))


def test_stack_builds(stack: Dict[str, Any]) -> None:
    assert stack["stack"]["StackStatus"] == "CREATE_COMPLETE"
    assert stack["outputs"]["VipAddress"] == "192.168.255.10"
    assert stack["outputs"]["RouteTableTag"] == "mirror-vip=mvtest"
    settings = json.loads(stack["outputs"]["MirrorVipSettings"])
    assert settings == {"vip": "192.168.255.10", "route_table_tag": "mirror-vip=mvtest"}


def test_two_member_subnets_in_two_zones(stack: Dict[str, Any]) -> None:
    ids = stack["ids"]
    subnets = stack["ec2"].describe_subnets(SubnetIds=[ids["MemberSubnetA"], ids["MemberSubnetB"]])
    by_id = {s["SubnetId"]: s for s in subnets["Subnets"]}
    a, b = by_id[ids["MemberSubnetA"]], by_id[ids["MemberSubnetB"]]
    assert (a["CidrBlock"], b["CidrBlock"]) == ("10.0.1.0/24", "10.0.2.0/24")
    assert a["VpcId"] == b["VpcId"] == stack["outputs"]["VpcId"]
    assert a["AvailabilityZone"] != b["AvailabilityZone"]
    for name, subnet in (("MemberA", a), ("MemberB", b)):
        found = instance(stack, name)
        assert found["SubnetId"] == subnet["SubnetId"]
        assert found["Placement"]["AvailabilityZone"] == subnet["AvailabilityZone"]
        assert ipaddress.ip_address(found["PrivateIpAddress"]) in ipaddress.ip_network(
            subnet["CidrBlock"]
        )


def test_vip_route_points_at_member_a_in_every_member_table(stack: Dict[str, Any]) -> None:
    ids = stack["ids"]
    member_a = instance(stack, "MemberA")
    eni_a = member_a["NetworkInterfaces"][0]["NetworkInterfaceId"]
    targets = vip_targets(stack, "192.168.255.10")
    expected = {ids["RouteTableA"], ids["RouteTableB"], ids["RouteTableArbiter"]}
    assert set(targets) == expected, "the VIP route in each private table, nowhere else"
    for found in targets.values():
        assert found and set(found) <= {member_a["InstanceId"], eni_a}


def test_role_carries_the_documented_policy(stack: Dict[str, Any]) -> None:
    role = stack["ids"]["MemberRole"]
    document = stack["iam"].get_role_policy(RoleName=role, PolicyName="mirror-vip")
    text = POLICY.read_text(encoding="utf-8")
    for placeholder, value in (
        ("ACCOUNT_ID", ACCOUNT),
        ("VPC_ID", stack["outputs"]["VpcId"]),
        ("REGION", stack["region"]),
    ):
        text = text.replace(placeholder, value)
    actual = policy_document(document["PolicyDocument"])
    assert actual == json.loads(text), "MemberRole's inline policy drifted from iam-policy.json"


def test_instance_profile_is_on_both_members(stack: Dict[str, Any]) -> None:
    profile = stack["iam"].get_instance_profile(
        InstanceProfileName=stack["ids"]["MemberInstanceProfile"]
    )["InstanceProfile"]
    assert [r["RoleName"] for r in profile["Roles"]] == [stack["ids"]["MemberRole"]]
    associations = stack["ec2"].describe_iam_instance_profile_associations()[
        "IamInstanceProfileAssociations"
    ]
    on = {a["InstanceId"] for a in associations if a["IamInstanceProfile"]["Arn"] == profile["Arn"]}
    assert on == {stack["ids"]["MemberA"], stack["ids"]["MemberB"]}


def test_member_security_group_opens_irises_ports(stack: Dict[str, Any]) -> None:
    group = stack["ids"]["MemberSecurityGroup"]
    found = stack["ec2"].describe_security_groups(GroupIds=[group])["SecurityGroups"][0]
    rules = {(p["FromPort"], p["ToPort"]): p for p in found["IpPermissions"]}
    assert {(1972, 1972), (2188, 2188), (443, 443)} <= set(rules)
    assert {"CidrIp": "10.0.0.0/16"} in rules[(1972, 1972)]["IpRanges"], "clients"
    assert group in {g["GroupId"] for g in rules[(1972, 1972)]["UserIdGroupPairs"]}, "mirror"
    assert group in {g["GroupId"] for g in rules[(2188, 2188)]["UserIdGroupPairs"]}, "ISCAgent"


def test_ec2_endpoint_serves_both_member_zones(stack: Dict[str, Any]) -> None:
    endpoint = stack["ec2"].describe_vpc_endpoints(VpcEndpointIds=[stack["ids"]["Ec2Endpoint"]])
    found = endpoint["VpcEndpoints"][0]
    assert found["ServiceName"] == "com.amazonaws.us-east-1.ec2"
    assert found["PrivateDnsEnabled"] is True
    assert set(found["SubnetIds"]) == {stack["ids"]["MemberSubnetA"], stack["ids"]["MemberSubnetB"]}


def test_minimal_stack_with_fixed_zones_and_addresses(moto_env: None) -> None:
    """What the simulated VPC builds: no arbiter, NAT or endpoint; fixed zones and addresses."""
    built = build(
        "eu-west-1",
        {
            "VpcCidr": "10.109.10.0/24",
            "MemberSubnetACidr": "10.109.10.0/26",
            "MemberSubnetBCidr": "10.109.10.64/26",
            "AvailabilityZoneA": "eu-west-1a",
            "AvailabilityZoneB": "eu-west-1b",
            "MemberAPrivateIp": "10.109.10.10",
            "MemberBPrivateIp": "10.109.10.74",
            "VipAddress": "10.109.20.10",
            "ClientCidr": "10.109.10.0/24",
            "CreateArbiter": "false",
            "CreateNatGateway": "false",
            "CreateEc2Endpoint": "false",
            "EnableSessionManager": "false",
        },
    )
    assert built["stack"]["StackStatus"] == "CREATE_COMPLETE"
    assert not {"Arbiter", "ArbiterSubnet", "NatGateway", "Ec2Endpoint"} & set(built["ids"])
    a, b = instance(built, "MemberA"), instance(built, "MemberB")
    assert (a["PrivateIpAddress"], b["PrivateIpAddress"]) == ("10.109.10.10", "10.109.10.74")
    assert a["Placement"]["AvailabilityZone"] == "eu-west-1a"
    assert b["Placement"]["AvailabilityZone"] == "eu-west-1b"
    targets = vip_targets(built, "10.109.20.10")
    assert set(targets) == {built["ids"]["RouteTableA"], built["ids"]["RouteTableB"]}
    assert all(a["InstanceId"] in found for found in targets.values())
    policy = built["iam"].get_role_policy(
        RoleName=built["ids"]["MemberRole"], PolicyName="mirror-vip"
    )
    writes = policy_document(policy["PolicyDocument"])["Statement"][1]
    vpc_arn = f"arn:aws:ec2:eu-west-1:{ACCOUNT}:vpc/{built['outputs']['VpcId']}"
    assert writes["Condition"] == {"ArnEquals": {"ec2:Vpc": vpc_arn}}
    encoded = built["ec2"].describe_instance_attribute(
        InstanceId=a["InstanceId"], Attribute="userData"
    )
    script = base64.b64decode(encoded["UserData"]["Value"]).decode()
    assert "VIP='10.109.20.10'" in script
