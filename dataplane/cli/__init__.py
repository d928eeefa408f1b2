"""The ``dataplane`` command: thin commands over the :class:`~dataplane.DataPlane` facade."""

from .main import main

__all__ = ["main"]
