"""AWS credentials from botocore's own chain, within the deadline, and a failure said as it is.

botocore resolves credentials when a client is made (`Session.create_client` calls
`get_credentials`, botocore/session.py) and again at signing once they near expiry
(RefreshableCredentials). The chain tries the environment and config files, then the instance
role through IMDS (InstanceMetadataProvider, botocore/credentials.py). Its IMDS fetcher gives up
quietly: a read timeout on the token is "no token" (`IMDSFetcher._fetch_metadata_token` returns
None), and any failure after that is "no credentials"
(`InstanceMetadataFetcher.retrieve_iam_role_credentials` returns {}, botocore/utils.py). A hang
then surfaces as botocore's NoCredentialsError, "Unable to locate credentials".

We keep botocore's chain and its fetcher, and watch the fetcher's HTTP session: its connections
report to the watchdog (so the fetch is bounded by the deadline, even against a peer that
dribbles), and what IMDS answered, or how a request failed, is kept, so a failure is reported as
what it was.
"""

from __future__ import annotations

from typing import Any, List, Optional, Tuple

import botocore.session

from . import unproxied, watchdog
from .errors import IdentityError
from .failures import NO_CREDENTIALS_FIX, describe

ROLE_PATH = "meta-data/iam/security-credentials/"


class _Watched:
    """Stands in for the IMDS fetcher's HTTP session: passes each request on, keeps how it went."""

    def __init__(self, http: Any) -> None:
        self.http = http
        self.failures: List[BaseException] = []
        self.answers: List[Tuple[str, int]] = []  # (path under /latest/, HTTP status)

    def send(self, request: Any) -> Any:
        path = str(request.url).split("/latest/", 1)[-1]
        try:
            response = self.http.send(request)
        except Exception as exc:
            self.failures.append(exc)
            raise
        self.answers.append((path, int(response.status_code)))
        return response

    def __getattr__(self, name: str) -> Any:
        return getattr(self.http, name)


def _imds_fetcher(core: botocore.session.Session) -> Any:
    """botocore's instance-role fetcher in this session's credential chain, or None."""
    try:
        provider = core.get_component("credential_provider").get_provider("iam-role")
        fetcher = provider._role_fetcher
        fetcher._session.send  # noqa: B018 - the layout we rely on: checked here, once
    except Exception:
        return None
    return fetcher


def resolve(core: botocore.session.Session, end: float, deadline_s: float) -> Any:
    """The session's credentials, resolved by END (time.monotonic()); IdentityError when there
    are none, saying why. The session keeps them: creating a client after this finds them."""
    fetcher = _imds_fetcher(core)
    watched: Optional[_Watched] = None
    if fetcher is not None:
        unproxied.unproxy(fetcher)  # IMDS directly, whatever HTTP_PROXY says
        watchdog.install(fetcher._session)
        watched = fetcher._session = _Watched(fetcher._session)
    with watchdog.bounded(end) as attempt:
        found = core.get_credentials()
    if found is not None:
        return found
    raise IdentityError(_why_none(fetcher, watched, attempt.expired, deadline_s))


def _why_none(fetcher: Any, watched: Optional[_Watched], expired: bool, deadline_s: float) -> str:
    if fetcher is None or watched is None:
        return f"no AWS credentials found; {NO_CREDENTIALS_FIX}"
    where = f"IMDS at {fetcher.get_base_url()}"
    if expired:
        return (
            f"the instance role's credentials did not come from {where} within the "
            f"{deadline_s:g}s deadline (no complete answer); {NO_CREDENTIALS_FIX}"
        )
    if not (watched.failures or watched.answers):
        return f"no AWS credentials found; {NO_CREDENTIALS_FIX}"
    if watched.failures:
        return (
            f"could not fetch the instance role's credentials from {where}: "
            f"{describe(watched.failures[-1])}; {NO_CREDENTIALS_FIX}"
        )
    if any(path == ROLE_PATH and status == 404 for path, status in watched.answers):
        return f"no AWS credentials found: {where} knows no instance role; {NO_CREDENTIALS_FIX}"
    path, status = watched.answers[-1]
    return (
        f"no usable credentials from {where} (HTTP {status} for {path or 'the last request'}); "
        f"{NO_CREDENTIALS_FIX}"
    )
