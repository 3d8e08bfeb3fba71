"""Built-in data generators (Pythia 8 + FastJet; install with ``pip install 'colliderfm[gen]'``).

Importing this package is cheap: Pythia and FastJet are imported only when generating.
"""

from colliderfm.data.generate.jets import PROCESSES, generate_jets

__all__ = ["PROCESSES", "generate_jets"]
