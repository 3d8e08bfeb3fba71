"""Pythia 8 process recipes for the built-in jet classes.

Each JetClass class is produced by one Pythia hard process chosen so that nearly every event holds
one boosted object at ``pT ~ pTHat`` (the hard-process pT window is set around the jet window by
the generator), with the object's decays forced to the class's final state:

=========  ==========  ===================================================================
key        class       hard process and forced decays
=========  ==========  ===================================================================
qcd        QCD         ``HardQCD:all`` (all 2 -> 2 QCD processes)
top        Tbqq        ``Top:gg2ttbar``, ``Top:qqbar2ttbar``; W -> q q' (both tops hadronic)
tblnu      Tbl         as ``top``; W -> e nu or mu nu (both tops leptonic)
wqq        Wqq         ``WeakBosonAndParton:qqbar2Wg``, ``qg2Wq``; W -> q q'
zqq        Zqq         ``WeakBosonAndParton:qqbar2gmZg``, ``qg2gmZq``, pure Z (``gmZmode=2``);
                       Z -> q qbar (u, d, s, c, b)
hbb        Hbb         Higgs + jet with the full top loop: ``HiggsSM:gg2Hg(l:t)``,
                       ``qg2Hq(l:t)``, ``qqbar2Hg(l:t)``; m_H = 125 GeV; H -> b bbar
hcc        Hcc         as ``hbb``; H -> c cbar
hgg        Hgg         as ``hbb``; H -> g g
h4q        H4q         as ``hbb``; H -> W W* with both W -> q q'
hlnuqq     Hqql        as ``hbb``; H -> W+ W-, one W -> q q' and the other -> e/mu nu: two
                       Pythia instances (W+ -> q q', W- -> l nu and the charge conjugate)
                       alternate batch by batch, so both lepton charges appear equally
=========  ==========  ===================================================================

The hard-process window is ``pTHat in [pt_min - below, pt_max + above]`` with ``(below, above)``
= ``(100, 100)`` GeV, except for the classes with a neutrino in the jet, whose visible jet pT is
well below the resonance pT: ``(50, 150)`` for Hqql and ``(50, 250)`` for Tbl. About 80-85% of the
jets that an unrestricted pTHat range would give in the jet window come from these windows; the
rest (jets far above pTHat through radiation) are a documented loss traded for 3-5x efficiency.

Truth matching (done in :mod:`colliderfm.data.generate.truth`): the resonance (``root_ids``) and
all its visible decay products (resonances expanded recursively, neutrinos dropped) must lie
within ``dR < 0.8`` of the jet axis.
"""

from __future__ import annotations

from dataclasses import dataclass

from colliderfm.data.schema import JETCLASS_CLASSES

_W_HADRONIC = ["24:onMode = off", "24:onIfAny = 1 2 3 4 5"]
_HIGGS_JET = [
    "HiggsSM:gg2Hg(l:t) = on",
    "HiggsSM:qg2Hq(l:t) = on",
    "HiggsSM:qqbar2Hg(l:t) = on",
    "25:m0 = 125.0",
    "25:onMode = off",
]
_TTBAR = ["Top:gg2ttbar = on", "Top:qqbar2ttbar = on"]


@dataclass(frozen=True)
class ProcessSpec:
    """How to generate and truth-match one jet class.

    Attributes:
        key: process key used on the command line (``top``, ``qcd``, ...).
        class_name: JetClass class name of the jets.
        settings: process-specific Pythia ``readString`` lines.
        root_ids: absolute PDG ids of the resonance to match (empty: no matching, e.g. QCD).
        n_leptons: required number of charged leptons among the decay products (None: any).
        pthat: ``(below, above)``: the pTHat window is ``[pt_min - below, pt_max + above]`` GeV.
        variants: extra settings of Pythia instances that alternate batch by batch (``((),)``:
            a single instance).
    """

    key: str
    class_name: str
    settings: tuple[str, ...]
    root_ids: tuple[int, ...] = ()
    n_leptons: int | None = None
    pthat: tuple[float, float] = (100.0, 100.0)
    variants: tuple[tuple[str, ...], ...] = ((),)


_SPECS: tuple[ProcessSpec, ...] = (
    ProcessSpec("qcd", "QCD", ("HardQCD:all = on",)),
    ProcessSpec("hbb", "Hbb", (*_HIGGS_JET, "25:onIfMatch = 5 -5"), (25,), 0),
    ProcessSpec("hcc", "Hcc", (*_HIGGS_JET, "25:onIfMatch = 4 -4"), (25,), 0),
    ProcessSpec("hgg", "Hgg", (*_HIGGS_JET, "25:onIfMatch = 21 21"), (25,), 0),
    ProcessSpec("h4q", "H4q", (*_HIGGS_JET, "25:onIfMatch = 24 -24", *_W_HADRONIC), (25,), 0),
    ProcessSpec(
        "hlnuqq",
        "Hqql",
        (*_HIGGS_JET, "25:onIfMatch = 24 -24", "24:onMode = off"),
        (25,),
        1,
        pthat=(50.0, 150.0),
        variants=(
            ("24:onPosIfAny = 1 2 3 4 5", "24:onNegIfAny = 11 13"),
            ("24:onPosIfAny = 11 13", "24:onNegIfAny = 1 2 3 4 5"),
        ),
    ),
    ProcessSpec(
        "zqq",
        "Zqq",
        (
            "WeakBosonAndParton:qqbar2gmZg = on",
            "WeakBosonAndParton:qg2gmZq = on",
            "WeakZ0:gmZmode = 2",
            "23:onMode = off",
            "23:onIfAny = 1 2 3 4 5",
        ),
        (23,),
        0,
    ),
    ProcessSpec(
        "wqq",
        "Wqq",
        ("WeakBosonAndParton:qqbar2Wg = on", "WeakBosonAndParton:qg2Wq = on", *_W_HADRONIC),
        (24,),
        0,
    ),
    ProcessSpec("top", "Tbqq", (*_TTBAR, *_W_HADRONIC), (6,), 0),
    ProcessSpec(
        "tblnu",
        "Tbl",
        (*_TTBAR, "24:onMode = off", "24:onIfAny = 11 13"),
        (6,),
        1,
        pthat=(50.0, 250.0),
    ),
)

#: Process key -> JetClass class name, in JetClass class order.
PROCESSES: dict[str, str] = {s.key: s.class_name for s in _SPECS}

#: Process key -> full recipe.
SPECS: dict[str, ProcessSpec] = {s.key: s for s in _SPECS}

#: Stable small integer per process (its JetClass index), used to derive per-unit seeds.
PROCESS_INDEX: dict[str, int] = {s.key: JETCLASS_CLASSES.index(s.class_name) for s in _SPECS}
