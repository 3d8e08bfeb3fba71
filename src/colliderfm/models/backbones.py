"""Set-transformer backbones: a ParticleTransformer-style jet encoder.

Every backbone maps a padded batch to per-particle tokens and a pooled jet vector::

    forward(x [B,P,F], mask [B,P], vectors [B,P,4] | None) -> tokens [B,P,D]
    embed(x, mask, vectors)                                  -> pooled [B,D]

No positional encoding: tokens are permutation-equivariant and ``embed`` is invariant. Padding
(mask False) may hold anything, NaN included; it never influences real particles.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from torch import nn

from colliderfm.models.blocks import (
    ClassAttentionBlock,
    ParticleBlock,
    TokenLayout,
    key_padding_bias,
    masked_mean,
)
from colliderfm.models.pairs import PairEmbed
from colliderfm.models.registry import DEFAULT_IN_DIM, register_model

_PART_PRESETS = {
    "tiny": dict(embed_dim=48, depth=2, num_heads=4, num_cls_layers=1, pair_hidden=8),
    "small": dict(embed_dim=96, depth=5, num_heads=6, num_cls_layers=2, pair_hidden=16),
    "base": dict(embed_dim=128, depth=8, num_heads=8, num_cls_layers=2, pair_hidden=16),
}


def packs_on(pack: bool | str, device: torch.device) -> bool:
    """Whether a backbone built with ``pack`` packs its tokens for a batch on ``device``.

    Args:
        pack: the backbone's ``pack`` setting: ``True``, ``False`` or ``"auto"``.
        device: where the batch lives.

    Returns:
        ``pack`` itself when it is a bool; for ``"auto"``, True on CPU (the packed, bucketed
        path is the fast one there) and False elsewhere (the padded path has no host
        synchronisation, and ``scaled_dot_product_attention`` takes the pair bias as its mask).
    """
    if isinstance(pack, bool):
        return pack
    return device.type == "cpu"


@register_model("part", _PART_PRESETS)
class ParticleTransformer(nn.Module):
    """ParticleTransformer-style encoder (Qu, Li, Qian 2022) tuned for CPU training.

    Particle embedding MLP -> ``depth`` pre-norm attention blocks whose attention is biased by an
    embedding of pairwise kinematics (ln kT, ln z, ln Delta, ln m^2; shared by all layers) ->
    final LayerNorm (tokens); pooling by ``num_cls_layers`` class-attention blocks or a masked
    mean. See :mod:`colliderfm.models.blocks` for how padding is skipped.
    """

    #: state-dict key prefixes of the class-attention pooling (absent when it pools by the mean)
    POOLING_KEYS: ClassVar[tuple[str, ...]] = ("cls_token", "cls_blocks.")

    def __init__(
        self,
        in_dim: int = DEFAULT_IN_DIM,
        embed_dim: int = 128,
        depth: int = 8,
        num_heads: int = 8,
        mlp_ratio: float = 4.0,
        pair_features: bool = True,
        pair_dim: int = 4,
        pair_hidden: int = 16,
        pooling: str = "cls",
        dropout: float = 0.0,
        num_cls_layers: int = 2,
        pack: bool | str = "auto",
        buckets: int = 4,
        normformer: bool = False,
        init_std: float | None = 0.02,
        init: str = "auto",
    ) -> None:
        """Build the encoder.

        Args:
            in_dim: per-particle input features ``F``.
            embed_dim: token width ``D``.
            depth: particle-attention blocks.
            num_heads: attention heads (``embed_dim`` must be divisible by it).
            mlp_ratio: MLP hidden width / ``D`` (also the embedding MLP's hidden width).
            pair_features: bias attention with pairwise kinematics (then ``vectors`` is required).
            pair_dim: pair inputs: 1 (ln Delta), 3 (+ ln kT, ln z) or 4 (+ ln m^2).
            pair_hidden: hidden width of the pair-embedding MLP (0 = linear).
            pooling: ``"cls"`` (class attention) or ``"mean"`` (masked mean).
            dropout: dropout on residual branches (attention weights are never dropped: that
                would rule out the fused kernels).
            num_cls_layers: class-attention blocks when ``pooling="cls"``.
            pack: run per-token layers on real particles only, attention in ``buckets``
                multiplicity groups (``True``; fastest on CPUs), or every position of the padded
                batch with padding masked out of attention (``False``; no host synchronisation,
                which suits GPUs, and what ONNX export needs). ``"auto"``: packed on CPU,
                padded on any other device, decided per batch from the mask's device. The two
                paths compute the same function (up to float rounding).
            buckets: multiplicity groups for attention (1 = pad to the batch's longest jet).
            normformer: ParT's extra norms and scales in every block (LayerNorm after attention
                and inside the MLP, learned head and residual scales), as weaver-core's default.
            init_std: std of the ``"normal"`` init; None keeps PyTorch's default init.
            init: ``"normal"``: truncated-normal linear layers (``init_std``) with GPT-2
                scaling of every residual projection by ``1/sqrt(2 depth)``; ``"xavier"``:
                weaver-core's (MoCo v3) init, Xavier-uniform with q, k and v treated separately
                and the residual projections of block ``l`` scaled by ``1/sqrt(2 l)``; ``"auto"``:
                ``"xavier"`` with ``normformer`` (its post-attention LayerNorm undoes the small
                normal init's scale, so Adam's steps become too large relative to the weights
                and training collapses), else ``"normal"``.
        """
        super().__init__()
        if pooling not in ("cls", "mean"):
            raise ValueError(f"pooling must be 'cls' or 'mean', got {pooling!r}")
        if init not in ("auto", "normal", "xavier"):
            raise ValueError(f"init must be 'auto', 'normal' or 'xavier', got {init!r}")
        if pack not in (True, False, "auto"):
            raise ValueError(f"pack must be true, false or 'auto', got {pack!r}")
        self.dim = embed_dim
        self.in_dim = in_dim
        self.num_heads = num_heads
        self.pooling = pooling
        self.pack = pack
        self.buckets = buckets
        hidden = int(embed_dim * mlp_ratio)
        self.embedding = nn.Sequential(
            nn.LayerNorm(in_dim),
            nn.Linear(in_dim, hidden),
            nn.GELU(),
            nn.LayerNorm(hidden),
            nn.Linear(hidden, embed_dim),
        )
        self.pair_embed = PairEmbed(num_heads, pair_dim, pair_hidden) if pair_features else None
        self.blocks = nn.ModuleList(
            ParticleBlock(embed_dim, num_heads, mlp_ratio, dropout, normformer)
            for _ in range(depth)
        )
        self.norm = nn.LayerNorm(embed_dim)
        n_cls = num_cls_layers if pooling == "cls" else 0
        self.cls_token = nn.Parameter(torch.zeros(1, embed_dim)) if n_cls else None
        self.cls_blocks = nn.ModuleList(
            ClassAttentionBlock(embed_dim, num_heads, mlp_ratio, 0.0, normformer)
            for _ in range(n_cls)
        )
        self.pool_norm = nn.LayerNorm(embed_dim)
        if init == "xavier" or (init == "auto" and normformer):
            self._init_xavier()
        elif init_std is not None:
            self._init_weights(depth, init_std)
        elif self.cls_token is not None:
            nn.init.trunc_normal_(self.cls_token, std=0.02)

    def _init_weights(self, depth: int, std: float = 0.02) -> None:
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=std)
                nn.init.zeros_(m.bias)
        for blk in list(self.blocks) + list(self.cls_blocks):  # GPT-2 residual scaling
            for lin in (blk.proj, blk.mlp.fc2):
                lin.weight.data.div_(math.sqrt(2.0 * max(depth, 1)))
        if self.cls_token is not None:
            nn.init.trunc_normal_(self.cls_token, std=0.02)

    def _init_xavier(self) -> None:
        """weaver-core's init: Xavier-uniform (q, k, v as three matrices), 1/sqrt(2 l) residuals."""
        for name, m in self.named_modules():
            if isinstance(m, nn.Linear):
                if name.endswith(".qkv"):
                    bound = math.sqrt(6.0 / (m.weight.shape[0] // 3 + m.weight.shape[1]))
                    nn.init.uniform_(m.weight, -bound, bound)
                else:
                    nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
        for layer, blk in enumerate(self.blocks, start=1):
            for lin in (blk.proj, blk.mlp.fc2):
                lin.weight.data.div_(math.sqrt(2.0 * layer))
        if self.cls_token is not None:
            nn.init.trunc_normal_(self.cls_token, std=0.02)

    def _encode(
        self, x: torch.Tensor, mask: torch.Tensor, vectors: torch.Tensor | None
    ) -> tuple[torch.Tensor, TokenLayout]:
        """Run embedding and particle blocks on flat tokens.

        Args:
            x: ``[B, P, F]`` features.
            mask: ``[B, P]`` bool.
            vectors: ``[B, P, 4]`` or None.

        Returns:
            (``[N, D]`` flat tokens before the final norm, the batch's layout).
        """
        mask = mask.bool()
        if x.shape[:2] != mask.shape or x.shape[2] != self.in_dim:
            raise ValueError(
                f"expected x [B, P, {self.in_dim}] matching mask {tuple(mask.shape)}, "
                f"got {tuple(x.shape)}"
            )
        pack = packs_on(self.pack, mask.device)
        layout = TokenLayout(mask, pack=pack, buckets=self.buckets)
        feats = layout.flatten(x)  # [N, F]
        if not pack:
            feats = torch.where(mask.reshape(-1, 1), feats, 0.0)  # [N, F] padding -> 0
        h = self.embedding(feats)  # [N, D]
        if self.pair_embed is not None:
            if vectors is None:
                raise ValueError(
                    "this backbone uses pair features: pass vectors [B, P, 4] "
                    "(px, py, pz, E in GeV), or build it with pair_features=False"
                )
            vec = layout.flatten(vectors.float())  # [N, 4]
            if not pack:
                vec = torch.where(mask.reshape(-1, 1), vec, 0.0)  # [N, 4]
            biases = [
                self.pair_embed(vg, km)  # [Bg, H, Pg, Pg]
                for vg, km in zip(layout.to_groups(vec), layout.key_masks, strict=True)
            ]
        else:
            biases = [key_padding_bias(km, h.dtype) for km in layout.key_masks]  # [Bg,1,1,Pg]
        for blk in self.blocks:
            h = blk(h, layout, biases)  # [N, D]
        return h, layout

    def _pool(
        self, h: torch.Tensor, layout: TokenLayout, mask: torch.Tensor, pooling: str | None = None
    ) -> torch.Tensor:
        """Pool flat tokens into one vector per jet.

        Args:
            h: ``[N, D]`` flat tokens (before the final norm).
            layout: the batch's layout.
            mask: ``[B, P]`` bool.
            pooling: ``"mean"`` pools by the masked mean even with class attention; None: the
                backbone's own pooling.

        Returns:
            ``[B, D]`` pooled, normalised vector.
        """
        if self.cls_token is None or pooling == "mean":
            pooled = layout.unflatten(h)  # [B, P, D]
            return self.pool_norm(masked_mean(pooled, mask.bool()))  # [B, D]
        biases = []
        for km in layout.key_masks:
            ok = torch.cat((km.new_ones(km.shape[0], 1), km), dim=1)  # [Bg, 1+Pg]
            biases.append(key_padding_bias(ok, h.dtype))  # [Bg, 1, 1, 1+Pg]
        cls = self.cls_token.expand(layout.batch, -1)  # [B, D] (group order)
        for blk in self.cls_blocks:
            cls = blk(cls, h, layout, biases)  # [B, D]
        return self.pool_norm(layout.jets_from_groups(cls))  # [B, D]

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor, vectors: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Per-particle tokens.

        Args:
            x: ``[B, P, F]`` particle features (anything at padding).
            mask: ``[B, P]`` bool, True for real particles.
            vectors: ``[B, P, 4]`` (px, py, pz, E) in GeV; required with pair features.

        Returns:
            ``[B, P, D]`` tokens (zero at padding when packing).
        """
        h, layout = self._encode(x, mask, vectors)  # [N, D]
        return layout.unflatten(self.norm(h))  # [B, P, D]

    def embed(
        self,
        x: torch.Tensor,
        mask: torch.Tensor,
        vectors: torch.Tensor | None = None,
        pooling: str | None = None,
    ) -> torch.Tensor:
        """Pooled jet representation.

        Args:
            x: ``[B, P, F]`` particle features.
            mask: ``[B, P]`` bool, True for real particles.
            vectors: ``[B, P, 4]`` (px, py, pz, E) in GeV; required with pair features.
            pooling: ``"mean"``: the masked mean whatever the backbone's pooling (what a copy
                of this backbone built with ``pooling="mean"`` gives); None: its own.

        Returns:
            ``[B, D]`` pooled vector (class attention or masked mean, then LayerNorm).
        """
        h, layout = self._encode(x, mask, vectors)  # [N, D]
        return self._pool(h, layout, mask, pooling)  # [B, D]

    def forward_both(
        self, x: torch.Tensor, mask: torch.Tensor, vectors: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Tokens and pooled vector from one pass (for objectives that need both).

        Args:
            x: ``[B, P, F]`` particle features.
            mask: ``[B, P]`` bool, True for real particles.
            vectors: ``[B, P, 4]`` or None.

        Returns:
            (``[B, P, D]`` tokens, ``[B, D]`` pooled vector).
        """
        h, layout = self._encode(x, mask, vectors)  # [N, D]
        return layout.unflatten(self.norm(h)), self._pool(h, layout, mask)
