"""`python -m rootfi_sync` runs the command line."""

from rootfi_sync.cli.commands import main

main()
