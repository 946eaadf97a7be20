"""IMDS is asked directly, never through a proxy, whatever the environment says.

botocore gives each IMDS fetcher an HTTP session with the environment's proxies
(`IMDSFetcher.__init__`, botocore/utils.py: `proxies=get_environ_proxies(base_url)`), so with
HTTP_PROXY exported and no NO_PROXY=169.254.169.254 the token PUT, the identity and the
instance role's credentials go to the proxy. A proxy on EC2 answers them from *its own*
instance's IMDS (another instance id, another role's credentials), or refuses them; and its
answer to the token PUT crosses one hop more than the hop limit allows. IMDS is link-local: a
proxy can never be the right way to it. So every fetcher we use (ours in imds.py, botocore's
in the credential chain) gets a session without proxies; the AWS API calls keep theirs
(the `proxy` setting, else the environment's).
"""

from __future__ import annotations

from typing import Any

from botocore.httpsession import URLLib3Session


def session(timeout: Any, verify: Any = True) -> URLLib3Session:
    """An HTTP session that sends every request straight to its URL."""
    return URLLib3Session(verify=verify, timeout=timeout, proxies={})


def unproxy(fetcher: Any) -> bool:
    """Give a botocore IMDSFetcher (or subclass) a session without proxies, before its first
    request. False, and nothing changed, on a botocore laid out otherwise."""
    try:
        old = fetcher._session
        if not isinstance(old, URLLib3Session):
            return False
        fetcher._session = session(fetcher._timeout)
    except AttributeError:
        return False
    old.close()
    return True
