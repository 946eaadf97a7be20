"""This instance's identity from the EC2 instance metadata service, IMDSv2 only.

We build on botocore's IMDSFetcher, as botocore's own region fetcher does: it already resolves
AWS_EC2_METADATA_SERVICE_ENDPOINT (and the endpoint mode) from the session's config, honours
AWS_EC2_METADATA_DISABLED, and sends the token headers. Its request helpers are private API, so
this module is the one place that touches them, and the tests pin the behaviour.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import botocore.session
from botocore.exceptions import BotoCoreError
from botocore.utils import IMDSFetcher

from .errors import IdentityError

TIMEOUT_S = 1
ATTEMPTS = 2


@dataclass(frozen=True)
class Identity:
    instance_id: str
    region: str
    eni: str
    vpc_id: str
    mac: str


class _Fetcher(IMDSFetcher):
    """One token, reused for every GET; fetched again once if IMDS says it expired (401)."""

    def __init__(self, session: botocore.session.Session) -> None:
        config = {
            "ec2_metadata_service_endpoint": session.get_config_variable(
                "ec2_metadata_service_endpoint"
            ),
            "ec2_metadata_service_endpoint_mode": session.get_config_variable(
                "ec2_metadata_service_endpoint_mode"
            ),
            # IMDSv1 is never used: a missing token is an error, not a fallback.
            "ec2_metadata_v1_disabled": True,
        }
        super().__init__(timeout=TIMEOUT_S, num_attempts=ATTEMPTS, config=config)
        self._token: Optional[str] = None

    @property
    def disabled(self) -> bool:
        return bool(self._private._disabled)

    @property
    def _private(self) -> Any:
        """IMDSFetcher's helpers are private (untyped in the stubs): reached through here only."""
        return self

    @property
    def endpoint(self) -> str:
        return str(self.get_base_url())

    def get(self, path: str) -> str:
        for _ in range(2):
            if self._token is None:
                self._token = self._private._fetch_metadata_token()
                if not self._token:
                    raise IdentityError(
                        f"IMDS at {self.endpoint} gave no IMDSv2 token "
                        f"(no answer within {TIMEOUT_S:g}s x {ATTEMPTS})"
                    )
            response = self._private._get_request(
                url_path=f"latest/meta-data/{path}",
                retry_func=_retry_on_server_error,
                token=self._token,
            )
            if response.status_code == 401:  # token expired: take a new one, once
                self._token = None
                continue
            if response.status_code == 404 and "/macs/" in path:
                raise IdentityError(
                    f"IMDS knows no network interface with MAC {path.split('/')[3]}; "
                    "the VIP interface must be an ENI of this instance"
                )
            if response.status_code != 200 or not response.text:
                raise IdentityError(f"IMDS answered {response.status_code} for meta-data/{path}")
            return str(response.text).strip()
        raise IdentityError(f"IMDS refused two fresh tokens for meta-data/{path} (401)")


def _retry_on_server_error(response: Any) -> bool:
    return int(response.status_code) >= 500


def fetch_identity(session: botocore.session.Session, mac: str) -> Identity:
    """Instance id, region, and the ENI and VPC behind the interface with this MAC.

    The ENI is the one whose MAC is the VIP interface's, not the instance's first ENI:
    multi-ENI instances are common (ClusterLabs' aws-vpc-move-ip learned this the hard way).
    """
    fetcher = _Fetcher(session)
    if fetcher.disabled:
        raise IdentityError("IMDS is disabled (AWS_EC2_METADATA_DISABLED=true)")
    try:
        instance_id = fetcher.get("instance-id")
        region = fetcher.get("placement/region")
        eni = fetcher.get(f"network/interfaces/macs/{mac}/interface-id")
        vpc_id = fetcher.get(f"network/interfaces/macs/{mac}/vpc-id")
    except (fetcher._private._RETRIES_EXCEEDED_ERROR_CLS, BotoCoreError, OSError) as exc:
        raise IdentityError(
            f"IMDS at {fetcher.endpoint} is unreachable ({type(exc).__name__})"
        ) from None
    return Identity(instance_id=instance_id, region=region, eni=eni, vpc_id=vpc_id, mac=mac)
