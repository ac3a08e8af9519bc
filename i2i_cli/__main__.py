"""`python -m i2i_cli ...` (and `torchrun -m i2i_cli ...`) runs the i2i command."""

from i2i_cli.main import main

main()
