"""``python -m dataplane`` runs the command line."""

from .cli import main

main()
