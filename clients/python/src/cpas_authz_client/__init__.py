"""Python client of the CPAS/OCMW authorization service.

``AuthzClient`` talks to the service (decisions, batches, a user's functions, users seen at login);
``cpas_authz_client.flask_ext.AuthzFlask`` (extra ``flask``) guards the views of a calling application.
"""

from .client import BATCH_LIMIT, AuthzClient, CheckLike, __version__
from .models import AuthzError, CheckRequest, Decision, ErrorInfo, Explanation, ProfileRef, UserFunctions

__all__ = [
    "BATCH_LIMIT",
    "AuthzClient",
    "AuthzError",
    "CheckLike",
    "CheckRequest",
    "Decision",
    "ErrorInfo",
    "Explanation",
    "ProfileRef",
    "UserFunctions",
    "__version__",
]
