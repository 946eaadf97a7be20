"""The limit row, run as a fresh process: only the parallel writes, with the table list, the ENI
and the region known. Credentials come from the instance role (IMDS) through boto3's own chain,
as they must on EC2. Nothing else: no describe, no verify.

    python bench/procs/limit.py REGION ENI DESTINATION TABLE...
"""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor

import boto3
from botocore.config import Config


def main() -> int:
    region, eni, destination, *tables = sys.argv[1:]
    config = Config(
        retries={"mode": "standard", "total_max_attempts": 1},
        max_pool_connections=max(10, len(tables)),
    )
    ec2 = boto3.client("ec2", region_name=region, config=config)

    def one(table: str) -> None:
        ec2.replace_route(
            RouteTableId=table, DestinationCidrBlock=destination, NetworkInterfaceId=eni
        )

    with ThreadPoolExecutor(max_workers=len(tables)) as pool:
        list(pool.map(one, tables))
    return 0


if __name__ == "__main__":
    sys.exit(main())
