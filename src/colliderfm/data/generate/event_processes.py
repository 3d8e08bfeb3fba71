"""Event-level processes and physics settings of the built-in event generator.

The numbers are documented in :mod:`colliderfm.data.generate.events`; :class:`EventSettings` holds
every one of them and is recorded in the manifest.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from colliderfm.data.generate.detector import DetectorResponse
from colliderfm.data.generate.units import pythia_base_settings, pythia_seed_settings
from colliderfm.data.generate.vetoes import EarlyVeto
from colliderfm.data.selection import Selection

SQRT_S = 13_000.0  # GeV
_W_LEPTONIC = "11 13 15"
_W_HADRONIC = "1 2 3 4 5"
#: Semileptonic W pair: one Pythia instance per lepton charge, alternating batch by batch.
_SEMILEPTONIC = (
    ("24:onMode = off", f"24:onPosIfAny = {_W_LEPTONIC}", f"24:onNegIfAny = {_W_HADRONIC}"),
    ("24:onMode = off", f"24:onPosIfAny = {_W_HADRONIC}", f"24:onNegIfAny = {_W_LEPTONIC}"),
)
_TTBAR = ("Top:gg2ttbar = on", "Top:qqbar2ttbar = on")
#: Alignment limit of a type-II-like 2HDM at tan(beta) = 1: H couples to fermions like the SM
#: Higgs and not to gauge or Higgs bosons (width ~28 GeV at m_H = 550 GeV, BR(H -> tt) ~ 45%).
_H2_ALIGNED = (
    "Higgs:useBSM = on",
    "HiggsBSM:gg2H2 = on",
    "HiggsH2:coup2W = 0",
    "HiggsH2:coup2Z = 0",
    "HiggsH2:coup2H1H1 = 0",
    "HiggsH2:coup2A3A3 = 0",
    "HiggsH2:coup2H1Z = 0",
    "HiggsH2:coup2A3H1 = 0",
    "HiggsH2:coup2HchgW = 0",
    "HiggsH2:coup2Hchg = 0",
    "35:onMode = off",
    "35:onIfMatch = 6 -6",
)


@dataclass(frozen=True)
class EventProcess:
    """One Pythia configuration that feeds a process (``datalike`` has several).

    Attributes:
        key: unique key (``ttbar``, ``h2hdm``, ``datalike/ttbar``, ...).
        settings: process-specific Pythia ``readString`` lines.
        variants: extra settings of instances that alternate batch by batch.
        datalike: uses the data-like tune and detector response.
        fraction: share of the ``datalike`` mix (selected events); 0 for labelled processes.
        truth_tag: draw b-tags from their distribution conditional on passing the selection
            (for processes whose tag rate is far too small to generate, i.e. W+jets).
        lepton_veto: the W decays are inclusive and the selected leptons come from them, so an
            event without a W -> e/mu/tau nu cannot pass (:mod:`.vetoes`; a forced decay needs no
            check).
        hidden_jets: final jets that the undecayed resonances of the early-jet check (one early
            object each, counted as a jet) can hide beyond themselves; None: no early-jet check
            (ttbar: two tops hide up to six jets).
    """

    key: str
    settings: tuple[str, ...]
    variants: tuple[tuple[str, ...], ...] = ((),)
    datalike: bool = False
    fraction: float = 0.0
    truth_tag: bool = False
    lepton_veto: bool = False
    hidden_jets: int | None = None


#: Every sub-process; ``datalike/*`` entries make up the unlabelled mix, with fixed fractions.
SUBPROCESSES: dict[str, EventProcess] = {
    p.key: p
    for p in (
        EventProcess("ttbar", _TTBAR, _SEMILEPTONIC),
        EventProcess("h2hdm", _H2_ALIGNED, _SEMILEPTONIC),
        EventProcess("datalike/ttbar", _TTBAR, datalike=True, fraction=0.86, lepton_veto=True),
        EventProcess(
            "datalike/singletop",
            ("Top:qq2tq(t:W) = on", "Top:ffbar2tqbar(s:W) = on", "24:onMode = off")
            + (f"24:onIfAny = {_W_LEPTONIC}",),
            datalike=True,
            fraction=0.06,
            hidden_jets=1,  # t -> b (tau_h nu): one object for up to two jets
        ),
        EventProcess(
            "datalike/wjets",
            (
                "WeakBosonAndParton:qqbar2Wg = on",
                "WeakBosonAndParton:qg2Wq = on",
                "PhaseSpace:pTHatMin = 60",
                "24:onMode = off",
                f"24:onIfAny = {_W_LEPTONIC}",
            ),
            datalike=True,
            fraction=0.05,
            truth_tag=True,
            hidden_jets=0,  # W -> tau_h nu: one object for at most one jet
        ),
        EventProcess(
            "datalike/ttV",
            ("HiggsSM:gg2Httbar = on", "HiggsSM:qqbar2Httbar = on", "25:m0 = 125.0"),
            datalike=True,
            fraction=0.03,  # no veto: H -> tau tau, Z Z can give the lepton
        ),
    )
}


@dataclass(frozen=True)
class EventSettings:
    """Physics settings shared by every unit of an event-generation run (GeV, radians).

    Attributes:
        mass: heavy Higgs (PDG 35) mass of ``h2hdm``.
        mpi: multi-parton interactions on.
        tau0_max: particles with ``c tau`` above this (mm) are stable.
        tune: Pythia ``Tune:pp`` of the labelled processes (14 = Monash 2013).
        datalike_tune: ``Tune:pp`` of the data-like mix (18 = CMS CUETP8M1, "Monash*").
        detector: particle-level detector response (labelled processes).
        datalike_smear: factor on every resolution term (detector and MET) for ``datalike``.
        lepton_pt_min, lepton_eta_max: electron/muon acceptance.
        iso_dr, iso_max: isolation cone and maximum relative isolation (sum of the other detected
            particles' pT in the cone over the lepton pT).
        jet_radius, jet_pt_min, jet_eta_max: anti-kT jets.
        btag_eff, ctag_rate, light_tag_rate: tag probability of b, c and light jets.
        match_dr: B/C-hadron to jet matching radius; hadrons need ``pT > hadron_pt_min``.
        met_sigma_const, met_sigma_stoch: per-component MET resolution
            ``sigma = const (+) stoch * sqrt(sum ET)`` (quadrature; sum ET of detected particles).
        selection: event selection (>= 1 lepton, >= 2 b-jets, >= 2 light jets) and objects kept
            per event (2 leptons, 10 jets, highest pT).
        early_veto: stop Pythia early on events that cannot pass (:meth:`veto`).
    """

    mass: float = 550.0
    mpi: bool = True
    tau0_max: float = 10.0
    tune: int = 14
    datalike_tune: int = 18
    detector: DetectorResponse = field(default_factory=DetectorResponse)
    datalike_smear: float = 1.1
    lepton_pt_min: float = 25.0
    lepton_eta_max: float = 2.5
    iso_dr: float = 0.3
    iso_max: float = 0.15
    jet_radius: float = 0.4
    jet_pt_min: float = 25.0
    jet_eta_max: float = 2.5
    btag_eff: float = 0.70
    ctag_rate: float = 0.10
    light_tag_rate: float = 0.01
    match_dr: float = 0.4
    hadron_pt_min: float = 5.0
    met_sigma_const: float = 5.0
    met_sigma_stoch: float = 0.5
    selection: Selection = field(default_factory=Selection)
    early_veto: bool = True

    def veto(self, process: str) -> EarlyVeto | None:
        """The early veto of a sub-process, derived from the selection (None: no veto).

        Process level: with a lepton required and ``lepton_veto``, a W -> e/mu/tau nu. Early jets
        (``hidden_jets`` not None), at an evolution scale of 10 GeV: at least
        ``min_bjets + min_light_jets - hidden_jets`` anti-kT jets of radius ``jet_radius`` with
        ``pT > 0.6 * jet_pt_min`` and ``|y| < jet_eta_max + 0.7``.

        Args:
            process: sub-process key.

        Returns:
            The thresholds, or None when nothing can be vetoed.
        """
        spec, sel = SUBPROCESSES[process], self.selection
        if not self.early_veto:
            return None
        lepton = spec.lepton_veto and sel.min_leptons >= 1
        jets = sel.min_bjets + sel.min_light_jets - (spec.hidden_jets or 0)
        veto = EarlyVeto(
            min_w_leptons=int(lepton),
            scale=10.0,
            radius=self.jet_radius,
            jet_pt_min=0.6 * self.jet_pt_min,
            jet_y_max=self.jet_eta_max + 0.7,
            min_jets=max(jets, 0) if spec.hidden_jets is not None else 0,
        )
        return veto if veto.process_level or veto.early_jets else None

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of every setting (for the manifest).

        Returns:
            Field name -> value (the detector as a nested dict).
        """
        return asdict(self)

    def response(self, process: str) -> tuple[DetectorResponse, float, float]:
        """Detector response and MET resolution terms of a sub-process.

        Args:
            process: sub-process key.

        Returns:
            ``(detector, met_sigma_const, met_sigma_stoch)``.
        """
        if not SUBPROCESSES[process].datalike:
            return self.detector, self.met_sigma_const, self.met_sigma_stoch
        k, d = self.datalike_smear, self.detector
        det = replace(
            d,
            track_res_const=d.track_res_const * k,
            track_res_slope=d.track_res_slope * k,
            photon_res_stoch=d.photon_res_stoch * k,
            photon_res_const=d.photon_res_const * k,
            neutral_res_stoch=d.neutral_res_stoch * k,
            neutral_res_const=d.neutral_res_const * k,
        )
        return det, self.met_sigma_const * k, self.met_sigma_stoch * k

    def pythia_settings(self, process: str, seed: int | None = None, variant: int = 0) -> list[str]:
        """Full list of Pythia ``readString`` lines for one sub-process.

        Args:
            process: sub-process key (see :data:`SUBPROCESSES`).
            seed: Pythia ``Random:seed`` (1..900000000); None leaves the seed lines out.
            variant: index into the sub-process's alternating variants.

        Returns:
            Settings lines.
        """
        spec = SUBPROCESSES[process]
        mass = [f"35:m0 = {self.mass}"] if process == "h2hdm" else []
        return [
            f"Tune:pp = {self.datalike_tune if spec.datalike else self.tune}",
            *pythia_base_settings(SQRT_S, self.mpi, self.tau0_max),
            *spec.settings,
            *mass,
            *spec.variants[variant],
            *pythia_seed_settings(seed),
        ]
