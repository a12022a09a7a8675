"""Short-lived tokens that read one prebuild's logs (CreatePrebuildLogsToken).

A token is signed with the secret key and names one prebuild; it is valid for one hour and reads
nothing else. The logs endpoint accepts only such a token, never a session cookie, so a log panel
or a script can be handed read access to one prebuild's logs and nothing more.
"""

from datetime import timedelta

from django.core import signing

from core.errors import Unauthenticated
from prebuilds.models import Prebuild

SALT = "prebuilds.logs-token.v1"
LIFETIME = timedelta(hours=1)


def logs_token_issue(*, prebuild: Prebuild) -> str:
    return signing.dumps({"p": str(prebuild.id)}, salt=SALT, compress=False)


def logs_token_verify(token: str, *, prebuild_id) -> None:
    """Raise Unauthenticated unless `token` is a valid, unexpired token for exactly this prebuild."""
    try:
        payload = signing.loads(token or "", salt=SALT, max_age=LIFETIME)
    except signing.SignatureExpired:
        raise Unauthenticated("the logs token has expired; request a new one") from None
    except signing.BadSignature:
        raise Unauthenticated("invalid logs token") from None
    if not isinstance(payload, dict) or payload.get("p") != str(prebuild_id):
        raise Unauthenticated("the logs token is for another prebuild")
