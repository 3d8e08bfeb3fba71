"""ObjectTransformer: a set encoder for whole collision events (leptons, b-jets, jets, MET).

Same interface and machinery as :class:`~colliderfm.models.backbones.ParticleTransformer`
(packed tokens, pre-norm attention blocks, class-attention or mean pooling, no positional
encoding)::

    forward(x [B,N,F], mask [B,N], vectors [B,N,4] | None) -> tokens [B,N,D]
    embed(x, mask, vectors)                                  -> pooled [B,D]

What differs for events:

* **Inputs.** The 11 per-object features of :data:`colliderfm.data.features.EVENT_FEATURES`
  (log pT, eta, sin/cos phi, log E, type one-hot, masked flag). They are already standardised and
  partly one-hot, so the embedding MLP has no input LayerNorm (a per-object LayerNorm would
  throw away the scale and offset of each object's feature vector).
* **Pair bias.** Optional, on by default: an MLP embedding of two pairwise quantities that are
  invariant under rotations about the beam and longitudinal boosts,

  - ``ln Delta R_ab`` with ``Delta R = sqrt(Delta y^2 + Delta phi^2)``; for pairs with a
    transverse-only object (MET) only ``|Delta phi|``,
  - ``ln m^2_ab``: the pair's invariant mass squared; for pairs with MET the transverse mass
    squared ``(E_T,a + E_T,b)^2 - |pT_a + pT_b|^2`` with ``E_T = sqrt(m^2 + pT^2)``.

  Events have at most a few dozen objects, so the ``N x N`` bias is cheap; it gives the
  attention direct access to resonance masses (W, top, heavy Higgs). A transverse-only object is
  recognised from its four-vector alone (``pz = 0`` and ``E = pT``, the MET convention of the
  event loaders), so the bias never needs the object types -- hiding an object's type from the
  features (masked object-id pretraining) hides it from the pair bias too.
* **Buckets.** Events have similar multiplicities, so attention runs on one group by default.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from colliderfm.models.backbones import ParticleTransformer
from colliderfm.models.registry import register_model
from colliderfm.physics import kinematics as K

#: Per-object input width of the ``event`` feature set.
EVENT_IN_DIM = 11

#: Names of the event pair features, in the order :func:`event_pair_features` returns them.
EVENT_PAIR_FEATURES: tuple[str, ...] = ("ln_delta_r", "ln_m2")

# Rough standardisation (u - shift) / scale: Delta R ~ 0.4-5, m ~ 10-1000 GeV. Self-pairs and
# padding sit at the clamps below.
_SHIFT = (0.0, 9.0)
_SCALE = (1.0, 2.5)
_MIN_DR = 1e-3  # ln(1e-3) ~ -6.9 for self-pairs
_MIN_M2 = 1.0  # GeV^2: massless collinear pairs and padding -> ln 1 = 0

_OBJT_PRESETS = {
    "tiny": dict(embed_dim=32, depth=2, num_heads=4, num_cls_layers=1, pair_hidden=8),
    "small": dict(embed_dim=64, depth=4, num_heads=4, num_cls_layers=1, pair_hidden=16),
    "base": dict(embed_dim=128, depth=6, num_heads=8, num_cls_layers=2, pair_hidden=32),
}


def transverse_only(vectors: torch.Tensor, rtol: float = 1e-4) -> torch.Tensor:
    """Which objects are transverse-only (MET convention: ``pz = 0`` and ``E = pT``).

    Args:
        vectors: ``[..., 4]`` (px, py, pz, E) in GeV.
        rtol: relative tolerance on ``E = pT``.

    Returns:
        ``[...]`` bool (False for all-zero padding).
    """
    p_t = K.pt(vectors)  # [...]
    return (vectors[..., 2] == 0) & (p_t > 0) & ((vectors[..., 3] - p_t).abs() <= rtol * p_t)


@torch.no_grad()
def event_pair_features(vectors: torch.Tensor) -> torch.Tensor:
    """Boost- and rotation-invariant pair features of event objects, channels-last.

    Padding must be zero (it gives the clamp values). MET-like objects (see
    :func:`transverse_only`) enter through ``|Delta phi|`` and the transverse mass.

    Args:
        vectors: ``[B, N, 4]`` (px, py, pz, E) in GeV.

    Returns:
        ``[B, N, N, 2]`` float32: ``ln Delta R``, ``ln m^2`` (GeV^2).
    """
    v = vectors.float()  # [B, N, 4]
    met = transverse_only(v)  # [B, N]
    either = met.unsqueeze(2) | met.unsqueeze(1)  # [B, N, N]
    y = K.rapidity(v)  # [B, N]
    d_y = torch.where(either, 0.0, y.unsqueeze(2) - y.unsqueeze(1))  # [B, N, N]
    d_phi = K.delta_phi(K.phi(v).unsqueeze(2), K.phi(v).unsqueeze(1))  # [B, N, N]
    d_r = torch.sqrt(d_y * d_y + d_phi * d_phi)  # [B, N, N]
    # invariant mass^2 of the pair: m_a^2 + m_b^2 + 2 (E_a E_b - p_a . p_b)
    metric = v.new_tensor([-1.0, -1.0, -1.0, 1.0])  # [4]
    m2 = K.mass2(v).clamp_min(0.0)  # [B, N]
    m2_inv = m2.unsqueeze(2) + m2.unsqueeze(1) + 2.0 * torch.bmm(v * metric, v.transpose(1, 2))
    # transverse mass^2: (E_Ta + E_Tb)^2 - |pT_a + pT_b|^2 = m_a^2 + m_b^2 + 2 (E_Ta E_Tb - pTa.pTb)
    e_t = torch.sqrt(m2 + K.pt(v) ** 2)  # [B, N]
    vt = v[..., :2]  # [B, N, 2]
    m2_t = m2.unsqueeze(2) + m2.unsqueeze(1)
    m2_t = m2_t + 2.0 * (e_t.unsqueeze(2) * e_t.unsqueeze(1) - torch.bmm(vt, vt.transpose(1, 2)))
    pair_m2 = torch.where(either, m2_t, m2_inv)  # [B, N, N]
    return torch.stack(
        (torch.log(d_r.clamp_min(_MIN_DR)), torch.log(pair_m2.clamp_min(_MIN_M2))), dim=-1
    )  # [B, N, N, 2]


class EventPairEmbed(nn.Module):
    """Event pair features -> one attention bias per head (shared by all attention layers).

    A pointwise MLP ``2 -> hidden -> GELU -> num_heads`` (``hidden=0``: linear) on the
    standardised :func:`event_pair_features`.
    """

    def __init__(self, num_heads: int, hidden: int = 16) -> None:
        """Build the embedding.

        Args:
            num_heads: attention heads (one bias each).
            hidden: hidden width of the MLP (0 = linear).
        """
        super().__init__()
        n_in = len(EVENT_PAIR_FEATURES)
        self.register_buffer("shift", torch.tensor(_SHIFT), persistent=False)
        self.register_buffer("scale", torch.tensor(_SCALE), persistent=False)
        self.fc1 = nn.Linear(n_in, hidden) if hidden > 0 else None
        self.fc2 = nn.Linear(hidden if hidden > 0 else n_in, num_heads)

    def forward(self, vectors: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
        """Compute the attention bias, key padding included.

        Args:
            vectors: ``[B, N, 4]`` (px, py, pz, E) in GeV, zero at padding.
            key_mask: ``[B, N]`` bool, False for keys no query may attend to.

        Returns:
            ``[B, H, N, N]`` bias (float32, or the autocast dtype), ``-inf`` on masked keys.
        """
        b, n, _ = vectors.shape
        u = (event_pair_features(vectors) - self.shift) / self.scale  # [B, N, N, 2]
        dev = u.device.type
        dtype = torch.get_autocast_dtype(dev) if torch.is_autocast_enabled(dev) else u.dtype
        with torch.autocast(dev, enabled=False):
            u = u.to(dtype)
            if self.fc1 is not None:
                u = F.gelu(F.linear(u, self.fc1.weight.to(dtype), self.fc1.bias.to(dtype)))
            bias = F.linear(u, self.fc2.weight.to(dtype), self.fc2.bias.to(dtype))  # [B,N,N,H]
        bias = bias.permute(0, 3, 1, 2)  # [B, H, N, N]
        return bias.masked_fill(~key_mask.view(b, 1, 1, n), float("-inf"))  # [B, H, N, N]


@register_model("objt", _OBJT_PRESETS)
class ObjectTransformer(ParticleTransformer):
    """Transformer over the reconstructed objects of an event (see the module docstring).

    Object embedding MLP (no input norm) -> ``depth`` pre-norm attention blocks, optionally
    biased by :class:`EventPairEmbed` -> final LayerNorm (tokens); pooling by class attention or
    a masked mean. ``forward``, ``embed`` and ``forward_both`` are those of
    :class:`~colliderfm.models.backbones.ParticleTransformer`.
    """

    def __init__(
        self,
        in_dim: int = EVENT_IN_DIM,
        embed_dim: int = 128,
        depth: int = 6,
        num_heads: int = 8,
        mlp_ratio: float = 4.0,
        pair_features: bool = True,
        pair_hidden: int = 32,
        pooling: str = "cls",
        dropout: float = 0.0,
        num_cls_layers: int = 2,
        pack: bool | str = "auto",
        buckets: int = 1,
    ) -> None:
        """Build the encoder.

        Args:
            in_dim: per-object input features ``F`` (11 for the ``event`` feature set).
            embed_dim: token width ``D``.
            depth: object-attention blocks.
            num_heads: attention heads (``embed_dim`` must be divisible by it).
            mlp_ratio: MLP hidden width / ``D`` (also the embedding MLP's hidden width).
            pair_features: bias attention with ``ln Delta R`` and ``ln m^2`` of object pairs
                (then ``vectors`` is required).
            pair_hidden: hidden width of the pair-embedding MLP (0 = linear).
            pooling: ``"cls"`` (class attention) or ``"mean"`` (masked mean).
            dropout: dropout on residual branches.
            num_cls_layers: class-attention blocks when ``pooling="cls"``.
            pack: run per-token layers on real objects only (``True``), every padded position
                (``False``; ONNX export), or ``"auto"``: packed on CPU, padded elsewhere (see
                :func:`~colliderfm.models.backbones.packs_on`).
            buckets: multiplicity groups for attention (1 = pad to the batch's largest event).
        """
        super().__init__(
            in_dim=in_dim,
            embed_dim=embed_dim,
            depth=depth,
            num_heads=num_heads,
            mlp_ratio=mlp_ratio,
            pair_features=False,
            pooling=pooling,
            dropout=dropout,
            num_cls_layers=num_cls_layers,
            pack=pack,
            buckets=buckets,
        )
        hidden = int(embed_dim * mlp_ratio)
        self.embedding = nn.Sequential(
            nn.Linear(in_dim, hidden),
            nn.GELU(),
            nn.LayerNorm(hidden),
            nn.Linear(hidden, embed_dim),
        )
        self.pair_embed = EventPairEmbed(num_heads, pair_hidden) if pair_features else None
        self._init_weights(depth)
