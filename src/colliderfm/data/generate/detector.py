"""A simple, documented detector response for generator-level particles (NumPy, vectorised).

Every visible final-state particle is classified and measured as follows (directions are kept; the
whole four-vector is scaled by the measured/true ratio, so ``E/|p|`` is unchanged):

* charged particles with ``|eta| < tracker_eta``: tracks, kept if the *measured* ``pT > 0.5 GeV``,
  relative pT resolution ``sigma/pT = 1% (+) 0.01% * pT[GeV]`` (added in quadrature);
* photons, and electrons outside the tracker: electromagnetic calorimeter, kept if the measured
  ``E > 1 GeV``, ``sigma/E = 5%/sqrt(E[GeV]) (+) 1%``;
* neutral hadrons, and charged hadrons/muons outside the tracker: hadronic calorimeter, kept if the
  measured ``E > 1 GeV``, ``sigma/E = 50%/sqrt(E[GeV]) (+) 5%``;
* nothing is kept beyond ``|eta| > calo_eta``.

Neutrinos are removed by the caller (they are invisible). The random numbers come from a seeded
``numpy.random.Generator`` so the response is reproducible.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from colliderfm.physics.kinematics import np_eta


@dataclass(frozen=True)
class DetectorResponse:
    """Parameters of the smearing model (GeV, dimensionless fractions).

    Attributes:
        track_pt_min: minimum measured track pT.
        track_res_const: constant term of ``sigma(pT)/pT``.
        track_res_slope: term of ``sigma(pT)/pT`` proportional to pT (per GeV).
        tracker_eta: tracker acceptance ``|eta|``.
        photon_e_min: minimum measured photon energy.
        photon_res_stoch: stochastic term of ``sigma(E)/E`` (times ``sqrt(E)``) for photons.
        photon_res_const: constant term of ``sigma(E)/E`` for photons.
        neutral_e_min: minimum measured neutral-hadron energy.
        neutral_res_stoch: stochastic term of ``sigma(E)/E`` for hadronic deposits.
        neutral_res_const: constant term of ``sigma(E)/E`` for hadronic deposits.
        calo_eta: calorimeter acceptance ``|eta|``.
    """

    track_pt_min: float = 0.5
    track_res_const: float = 0.01
    track_res_slope: float = 1e-4
    tracker_eta: float = 2.5
    photon_e_min: float = 1.0
    photon_res_stoch: float = 0.05
    photon_res_const: float = 0.01
    neutral_e_min: float = 1.0
    neutral_res_stoch: float = 0.50
    neutral_res_const: float = 0.05
    calo_eta: float = 5.0

    def to_dict(self) -> dict[str, Any]:
        """Return the parameters as a plain dict (for the manifest).

        Returns:
            Field name -> value.
        """
        return asdict(self)

    def apply(
        self, p4: np.ndarray, pid: np.ndarray, charge: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """Measure particles: smear their four-momenta and apply thresholds and acceptances.

        Args:
            p4: ``[N, 4]`` float64 true (px, py, pz, E) in GeV.
            pid: ``[N]`` PDG ids.
            charge: ``[N]`` electric charges.
            rng: seeded generator (one normal draw per particle, in order).

        Returns:
            ``(keep, p4_measured)``: ``[N]`` bool mask of detected particles and ``[N, 4]`` float64
            smeared four-momenta (rows where ``keep`` is False are meaningless).
        """
        px, py, pz, e = p4[:, 0], p4[:, 1], p4[:, 2], p4[:, 3]
        pt = np.hypot(px, py)
        abs_eta = np.abs(np_eta(px, py, pz))
        apid = np.abs(pid)
        tracked = (charge != 0) & (abs_eta < self.tracker_eta)
        em = ~tracked & ((apid == 22) | (apid == 11))
        e_safe = np.maximum(e, 1e-9)
        sigma = np.where(
            tracked,
            np.hypot(self.track_res_const, self.track_res_slope * pt),
            np.where(
                em,
                np.hypot(self.photon_res_stoch / np.sqrt(e_safe), self.photon_res_const),
                np.hypot(self.neutral_res_stoch / np.sqrt(e_safe), self.neutral_res_const),
            ),
        )
        scale = np.maximum(1.0 + sigma * rng.standard_normal(pt.shape[0]), 0.0)
        keep = np.where(
            tracked,
            pt * scale > self.track_pt_min,
            np.where(em, e * scale > self.photon_e_min, e * scale > self.neutral_e_min),
        )
        keep &= abs_eta < self.calo_eta
        return keep, p4 * scale[:, None]
