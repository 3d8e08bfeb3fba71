"""Pairwise (particle-particle) features and their embedding into a per-head attention bias.

ParticleTransformer (arXiv:2202.03772, eq. 3) biases every particle-attention layer with an
embedding of four pairwise quantities of particles ``a`` and ``b``:

* ``ln kT = ln(min(pT_a, pT_b) * Delta)``
* ``ln z = ln(min(pT_a, pT_b) / (pT_a + pT_b))``
* ``ln Delta`` with ``Delta = sqrt((y_a - y_b)^2 + (phi_a - phi_b)^2)`` (rapidity ``y``)
* ``ln m^2 = ln((E_a + E_b)^2 - |p_a + p_b|^2)``

each clamped at ``eps`` before the log (as weaver-core does). These are O(P^2) per jet, so
everything here is batched, computed once per batch in float32 without autograd, and embedded by a
tiny pointwise MLP applied channels-first (no permute copies). The same bias is shared by all
particle-attention layers, as in ParT.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from colliderfm.errors import ConfigError
from colliderfm.physics import kinematics as K

#: Names of the pair features in the order :func:`pair_features` returns them.
PAIR_FEATURES: tuple[str, ...] = ("ln_kt", "ln_z", "ln_delta", "ln_m2")

#: Which features a ``pair_dim`` selects (ParT's ``pairwise_lv_fts`` with ``num_outputs``).
_SELECT: dict[int, tuple[int, ...]] = {1: (2,), 3: (0, 1, 2), 4: (0, 1, 2, 3)}

# Rough standardisation ``(u - shift) / scale`` for boosted jets (pT ~ 0.5-100 GeV particles,
# Delta < 1). Self-pairs and padding sit at ln(eps) ~ -18.4, far below; the MLP learns the rest.
_SHIFT = (0.0, -2.0, -2.0, 0.0)
_SCALE = (3.0, 1.5, 1.5, 4.0)


@torch.no_grad()
def pair_features(vectors: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """ParT's pairwise features for all particle pairs, channels-first.

    Padding must already be zero (zero vectors give finite values, e.g. ``ln eps``).

    Args:
        vectors: ``[B, P, 4]`` (px, py, pz, E) in GeV.
        eps: clamp before each log.

    Returns:
        ``[B, 4, P, P]`` float32: ``ln kT, ln z, ln Delta, ln m^2`` (GeV, GeV^2).
    """
    v = vectors.float()  # [B, P, 4]
    p_t = K.pt(v)  # [B, P]
    y = K.rapidity(v)  # [B, P]
    phi = K.phi(v)  # [B, P]
    d_y = y.unsqueeze(2) - y.unsqueeze(1)  # [B, P, P]
    d_phi = K.delta_phi(phi.unsqueeze(2), phi.unsqueeze(1))  # [B, P, P]
    delta = torch.sqrt(d_y * d_y + d_phi * d_phi)  # [B, P, P]
    pt_a, pt_b = p_t.unsqueeze(2), p_t.unsqueeze(1)  # [B, P, 1], [B, 1, P]
    pt_min = torch.minimum(pt_a, pt_b)  # [B, P, P]
    ln_kt = torch.log((pt_min * delta).clamp_min(eps))  # [B, P, P]
    ln_z = torch.log((pt_min / (pt_a + pt_b).clamp_min(eps)).clamp_min(eps))  # [B, P, P]
    ln_delta = torch.log(delta.clamp_min(eps))  # [B, P, P]
    # m^2_ab = m^2_a + m^2_b + 2 (E_a E_b - p_a . p_b): one batched matmul instead of 4-vector sums
    metric = v.new_tensor([-1.0, -1.0, -1.0, 1.0])  # [4]
    dot = torch.bmm(v * metric, v.transpose(1, 2))  # [B, P, P]
    m2 = K.mass2(v)  # [B, P]
    m2_ab = m2.unsqueeze(2) + m2.unsqueeze(1) + 2.0 * dot  # [B, P, P]
    ln_m2 = torch.log(m2_ab.clamp_min(eps))  # [B, P, P]
    return torch.stack((ln_kt, ln_z, ln_delta, ln_m2), dim=1)  # [B, 4, P, P]


class PairEmbed(nn.Module):
    """Pairwise features -> one attention bias per head (shared by all particle-attention layers).

    A pointwise MLP ``n_in -> hidden -> GELU -> num_heads`` (``hidden=0``: a single linear map),
    applied channels-first as batched matmuls over the ``P*P`` pairs.
    """

    def __init__(self, num_heads: int, pair_dim: int = 4, hidden: int = 16) -> None:
        """Build the embedding.

        Args:
            num_heads: attention heads (one bias each).
            pair_dim: number of pair inputs: 1 (``ln Delta``), 3 (``ln kT, ln z, ln Delta``)
                or 4 (plus ``ln m^2``).
            hidden: hidden width of the MLP (0 = linear).
        """
        super().__init__()
        if pair_dim not in _SELECT:
            raise ConfigError(f"pair_dim = {pair_dim} is not one of {', '.join(map(str, _SELECT))}")
        self.pair_dim = pair_dim
        sel = list(_SELECT[pair_dim])
        self.register_buffer("shift", torch.tensor(_SHIFT)[sel].view(1, -1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(_SCALE)[sel].view(1, -1, 1), persistent=False)
        self._sel = sel
        self.fc1 = nn.Linear(pair_dim, hidden) if hidden > 0 else None
        self.fc2 = nn.Linear(hidden if hidden > 0 else pair_dim, num_heads)

    def forward(self, vectors: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
        """Compute the attention bias, key padding included.

        Args:
            vectors: ``[B, P, 4]`` (px, py, pz, E) in GeV, zero at padding.
            key_mask: ``[B, P]`` bool, False for keys no query may attend to.

        Returns:
            ``[B, H, P, P]`` bias (float32, or the autocast dtype): the embedded pair features,
            ``-inf`` on masked keys.
        """
        b, p, _ = vectors.shape
        u = pair_features(vectors)  # [B, 4, P, P]
        if self.pair_dim != 4:
            u = u[:, self._sel]  # [B, C, P, P]
        # one dtype end to end (mixed fp32/bf16 elementwise ops are slow on CPU)
        dev = u.device.type
        dtype = torch.get_autocast_dtype(dev) if torch.is_autocast_enabled(dev) else u.dtype
        with torch.autocast(dev, enabled=False):
            u = ((u.view(b, self.pair_dim, p * p) - self.shift) / self.scale).to(dtype)  # [B,C,PP]
            if self.fc1 is not None:
                u = F.gelu(_pointwise(self.fc1, u))  # [B, Hd, P*P]
            bias = _pointwise(self.fc2, u).view(b, -1, p, p)  # [B, H, P, P]
        return bias.masked_fill(~key_mask.view(b, 1, 1, p), float("-inf"))  # [B, H, P, P]


def _pointwise(lin: nn.Linear, u: torch.Tensor) -> torch.Tensor:
    """Apply ``lin`` along the channel axis of a channels-first tensor (a 1x1 convolution).

    Args:
        lin: the linear layer (``C_in -> C_out``).
        u: ``[B, C_in, M]``.

    Returns:
        ``[B, C_out, M]`` in the dtype of ``u``.
    """
    b, _, m = u.shape
    w = lin.weight.to(u.dtype).unsqueeze(0).expand(b, -1, -1)  # [B, C_out, C_in]
    bias = lin.bias.to(u.dtype).view(1, -1, 1).expand(b, -1, m)  # [B, C_out, M]
    return torch.baddbmm(bias, w, u)  # [B, C_out, M]
