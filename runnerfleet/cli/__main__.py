"""`python -m runnerfleet.cli` is the `runnerfleet` command."""

from runnerfleet.cli import main

main()
