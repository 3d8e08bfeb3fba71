"""Built-in data generators (Pythia 8 + FastJet; install with ``pip install 'colliderfm[gen]'``).

``generate_jets`` writes jets (top, QCD, the JetClass-like processes), ``generate_events`` whole
events (ttbar, the heavy 2HDM Higgs, the unlabelled data-like mix). Importing this package is
cheap: Pythia and FastJet are imported only when generating.
"""

from colliderfm.data.generate.events import EVENT_PROCESSES, generate_events
from colliderfm.data.generate.jets import PROCESSES, generate_jets

__all__ = ["EVENT_PROCESSES", "PROCESSES", "generate_events", "generate_jets"]
