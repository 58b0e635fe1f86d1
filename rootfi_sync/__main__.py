"""`python -m rootfi_sync` runs the command line."""

from rootfi_sync.cli import main

main()
