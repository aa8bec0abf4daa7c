"""`python -m stseg_cli` runs the app."""

from stseg_cli.main import main

main()
