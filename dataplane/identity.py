"""Who is acting: recorded as ``created_by`` on versions and as the actor in the audit log."""

from __future__ import annotations

import getpass
import os
import socket

__all__ = ["current_actor"]

ENV_VAR = "DATAPLANE_ACTOR"


def current_actor() -> str:
    """``$DATAPLANE_ACTOR`` if set (CI jobs, services), else ``user@host``."""
    if os.environ.get(ENV_VAR):
        return os.environ[ENV_VAR]
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry, e.g. in some containers
        user = f"uid{os.getuid()}"
    return f"{user}@{socket.gethostname()}"
