"""`python -m server.cli` is the `credence` command (the tests and the containers call it so)."""
from server.cli import main

main()
