"""``python -m colliderfm`` (also what ``torchrun -m colliderfm`` runs)."""

from colliderfm.cli import main

if __name__ == "__main__":
    main()
