"""python -m mirror_vip COMMAND [options]: the command-line face of mirror_vip.api.

argparse (standard library): nothing to install into IRIS's mgr/python, and its --help is
the one place every option is documented.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Dict, Optional, Sequence

from . import __version__, api, environment, openmetrics, settings
from .errors import EXIT_INVALID, MirrorVipError
from .report import Report, render_text

DESCRIPTION = """\
Point an IRIS mirror's virtual IP (VIP) at this EC2 instance by moving the VIP's /32 route
in the VPC's route tables to this instance's network interface (ENI).

commands:
  claim    make the VIP route in every selected table target this ENI (what a new primary runs)
  release  delete the VIP route where it targets this ENI (teardown, before deleting subnets)
  status   read-only: this instance, the VIP on the interface, where each table's route points
  doctor   preflight checks, each pass/warn/fail with the fix

exit codes: 0 success; 1 not fully done (or a doctor check failed); 2 invalid input or a VIP
that conflicts with the VPC's layout, with nothing changed.
"""

EPILOG = """\
settings can also come from --config FILE (JSON, same key names: vip, interface, label,
route_tables, route_table_tag, region, eni, deadline, cache_file, proxy, ec2_endpoint,
sts_endpoint, role_arn, external_id); options given here override it.
AWS credentials and endpoints come from boto3's standard chain (instance role through IMDSv2,
AWS_PROFILE, AWS_ENDPOINT_URL ...); --ec2-endpoint and --sts-endpoint win over
AWS_ENDPOINT_URL*, --proxy over HTTPS_PROXY/NO_PROXY. IMDS (169.254.169.254) is always asked
directly, never through a proxy, whatever HTTP(S)_PROXY and NO_PROXY say. In a shared VPC
(--role-arn) the route tables are read and written as the owner account's role, assumed
through STS's regional endpoint in session mirror-vip-<instance id>; this instance's ENI is
read as its own role."""


MAX_USAGE_ERROR_CHARS = 300


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # one line and exit 2, argparse's usage noise aside
        if len(message) > MAX_USAGE_ERROR_CHARS:  # a huge argument: its start and the end
            message = f"{message[:150]} ... {message[-100:]}"
        self.exit(EXIT_INVALID, f"mirror-vip: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m mirror_vip",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", choices=("claim", "release", "status", "doctor"))
    parser.add_argument(
        "--vip", help="the VIP (IPv4); default: the address labelled LABEL on INTERFACE"
    )
    parser.add_argument(
        "--interface",
        help="the interface that carries the VIP and whose ENI is targeted (default eth0)",
    )
    parser.add_argument("--label", help="the VIP's address label (default INTERFACE:1)")
    parser.add_argument(
        "--route-tables",
        metavar="all|rtb-a,rtb-b",
        help="which route tables of the instance's VPC carry the VIP route (default all)",
    )
    parser.add_argument(
        "--route-table-tag",
        metavar="KEY=VALUE",
        help="only the tables with this tag (with --route-tables: both must match)",
    )
    parser.add_argument("--region", help="AWS region (default: from IMDS)")
    parser.add_argument(
        "--eni",
        help="network interface to target (default: the ENI behind INTERFACE, "
        "from IMDS); with --region, IMDS is not used",
    )
    parser.add_argument(
        "--deadline", metavar="SECONDS", help="give up retrying after this long (default 30)"
    )
    parser.add_argument(
        "--cache-file",
        metavar="FILE",
        help="remember the route-table list here (every claim refreshes it)",
    )
    parser.add_argument(
        "--role-arn",
        metavar="ARN",
        help="shared VPC: the route tables' owner account's IAM role "
        "(arn:aws:iam::ACCOUNT:role/NAME), assumed for their reads and writes",
    )
    parser.add_argument(
        "--external-id",
        metavar="ID",
        help="with --role-arn: the sts:ExternalId its trust policy requires",
    )
    parser.add_argument(
        "--use-cache",
        action="store_true",
        help="claim: write the tables listed in --cache-file at once (what a failover runs); "
        "a table gone or new falls back to the describe",
    )
    network = parser.add_argument_group(
        "private subnets",
        "how the EC2 (and STS) calls leave a subnet without an internet route",
    )
    network.add_argument(
        "--proxy",
        metavar="URL",
        help="an HTTP proxy for the AWS calls (CONNECT; TLS stays end to end): "
        "http://HOST:PORT, https:// for TLS to the proxy, USER:PASSWORD@ (percent-encoded) "
        "for Basic authentication: keep a password in --config FILE, not on the command "
        "line; IRIS processes do not inherit a shell's HTTPS_PROXY: set this there",
    )
    network.add_argument(
        "--ec2-endpoint",
        metavar="URL",
        help="the EC2 interface VPC endpoint's DNS name when it has no private DNS, as "
        "https://vpce-...ec2.REGION.vpce.amazonaws.com (with private DNS nothing is needed)",
    )
    network.add_argument(
        "--sts-endpoint",
        metavar="URL",
        help="the same for STS (https://vpce-...sts.REGION.vpce.amazonaws.com), used when "
        "a role is assumed",
    )
    parser.add_argument("--config", metavar="FILE", help="a JSON file of settings")
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print the report as one JSON object")
    output.add_argument(
        "--openmetrics",
        action="store_true",
        help="status: print OpenMetrics text (mirrorvip_vip_routed_here{id=TABLE} and the time "
        "of the read; the names IRIS's /api/monitor/metrics uses) for node_exporter's textfile "
        "collector: a status that cannot read the tables leaves those series out; the exit "
        "code is the status's",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="claim/release: say what would change, change nothing",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="release: delete the VIP route whatever it targets, not only where it targets "
        "this ENI",
    )
    parser.add_argument("--version", action="version", version=f"mirror-vip {__version__}")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as stop:  # --help, --version, or a usage error already printed
        return int(stop.code or 0)
    if args.openmetrics and args.command != "status":
        print(
            f"mirror-vip: --openmetrics is for status, not {args.command} (see --help)",
            file=sys.stderr,
        )
        return EXIT_INVALID
    report = run(args)
    if args.openmetrics:
        print(openmetrics.render(report), end="")
        for error in report.errors:  # stdout is the exposition: the reasons go to stderr
            print(f"mirror-vip: {error}", file=sys.stderr)
    elif args.json:
        print(report.to_json(indent=2))
    elif report.exit_code == EXIT_INVALID and report.errors:
        print(f"mirror-vip: {report.errors[0]}", file=sys.stderr)  # one line, nothing changed
    else:
        print(render_text(report), file=sys.stdout if report.ok else sys.stderr)
    return report.exit_code


def run(args: argparse.Namespace) -> Report:
    options: Dict[str, Any] = {}
    if args.command in ("claim", "release"):
        options = {"dry_run": args.dry_run, "force": args.force}
    if args.command == "claim":
        options["use_cache"] = args.use_cache
    try:
        chosen = settings.load(_overrides(args), args.config)
        environment.check(proxy_setting=bool(chosen.proxy))  # botocore's variables: input too
    except MirrorVipError as exc:
        report = Report(command=args.command, dry_run=bool(options.get("dry_run")))
        report.fail(str(exc), exc.exit_code)
        return report
    result: Report = getattr(api, args.command)(chosen, **options)
    return result


def _overrides(args: argparse.Namespace) -> Dict[str, Any]:
    values: Dict[str, Any] = {
        "vip": args.vip,
        "interface": args.interface,
        "label": args.label,
        "route_tables": args.route_tables,
        "route_table_tag": args.route_table_tag,
        "region": args.region,
        "eni": args.eni,
        "deadline": args.deadline,
        "cache_file": args.cache_file,
        "proxy": args.proxy,
        "ec2_endpoint": args.ec2_endpoint,
        "sts_endpoint": args.sts_endpoint,
        "role_arn": args.role_arn,
        "external_id": args.external_id,
    }
    return values
