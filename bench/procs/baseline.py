"""The baseline row, run as a fresh process: the seed article's algorithm (sim/baseline.py:
IMDS, boto3's resource API, delete then create in every route table, one after the other).

    python bench/procs/baseline.py IMDS_URL VIP

The VIP is given (the article reads it off `eth0:1` with `ip`; the bench host has no such
alias); everything else is sim.baseline's own code.
"""

from __future__ import annotations

import json
import sys

from sim import baseline


def main() -> int:
    imds, vip = sys.argv[1:3]
    import boto3

    baseline.IMDS = imds
    instance_id = baseline.metadata("instance-id")
    region = baseline.metadata("placement/region")
    report = baseline.claim(boto3.Session(region_name=region), instance_id, vip)
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
