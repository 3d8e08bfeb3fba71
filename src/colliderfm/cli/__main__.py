"""``python -m colliderfm.cli``."""

from colliderfm.cli import main

main()
