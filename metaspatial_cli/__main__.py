"""`python -m metaspatial_cli ...` (used by `accelerate launch -m metaspatial_cli update ...`)."""

from .app import main

main()
