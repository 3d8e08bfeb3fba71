"""A VQ-VAE particle tokenizer (for masked particle modelling).

Each real particle of a jet is mapped to one of ``codebook_size`` discrete codes. Design (as in
the MPM paper, Golling et al. 2024, and OmniJet-alpha, whose tokenizers see the whole jet):

* **Input normalisation**: per-feature mean/std buffers fitted on the first training batch's
  real particles (saved with the weights), so every feature weighs the same in the codes and in
  the reconstruction loss. Reconstruction errors are reported in these standardised units.
* **Encoder**: a per-particle MLP (``in_dim -> hidden``), then ``layers`` pre-norm self-attention
  blocks over the jet's real particles (padding masked; ``layers=0`` gives a purely per-particle
  tokenizer), then ``hidden -> code_dim``. The features are already jet-relative (log pT/pT_jet,
  d-eta, d-phi, ...); the attention adds the jet context. Permutation equivariant.
* **Quantiser**: nearest code (Euclidean); straight-through gradients to the encoder; commitment
  loss ``beta * |z - sg(e)|^2``. The codebook is updated either by exponential moving averages
  (``update="ema"``, Laplace-smoothed counts) or by gradient (``update="st"``, the codebook loss
  ``|sg(z) - e|^2``). The codebook is initialised from encoder outputs of the first batch.
* **Dead-code restarts**: every ``restart_every`` training steps, codes hit on average fewer
  than ``restart_threshold`` times per step since the last check are re-initialised from
  randomly chosen encoder outputs of the current batch (the most recent ones).
* **Decoder**: mirror of the encoder (``code_dim -> hidden``, ``layers`` attention blocks,
  ``hidden -> in_dim``); the loss uses the first 7 kinematic features (``reconstruct="kinematic"``)
  or all of them (``"all"``). The output width is always ``in_dim`` so the weights' shapes do
  not depend on that choice.

The state-dict keys are the same for both update modes (the codebook is a parameter that is
frozen under EMA), so a tokenizer's structure is fully set by ``in_dim``, ``codebook_size``,
``code_dim``, ``hidden`` and ``layers``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from colliderfm.builders import register_builder
from colliderfm.data.schema import Batch
from colliderfm.tokenizers.base import TOKENIZERS

N_KINEMATIC = 7  # features 0-6 of every feature set are the kinematic ones

#: the fields that set a tokenizer's weight shapes (checked when an MPM run loads one)
STRUCTURE_KEYS = ("codebook_size", "code_dim", "hidden", "layers")


@TOKENIZERS.register("vqvae")
@dataclass
class VQVAEParams:
    """Settings of the VQ-VAE tokenizer (``objective.params`` when ``objective.name: vqvae``)."""

    codebook_size: int = field(default=512, metadata={"range": (2, 1 << 16)})
    code_dim: int = field(default=8, metadata={"range": (1, 1024)})
    hidden: int = field(default=128, metadata={"range": (4, 4096)})
    layers: int = field(default=1, metadata={"range": (0, 16)})
    update: str = field(default="ema", metadata={"choices": ("ema", "st")})
    beta: float = field(default=0.25, metadata={"range": (0.0, None)})
    decay: float = field(default=0.99, metadata={"range": (0.0, 1.0)})
    restart_every: int = field(default=50, metadata={"range": (0, None)})
    restart_threshold: float = field(default=1.0, metadata={"range": (0.0, None)})
    reconstruct: str = field(default="kinematic", metadata={"choices": ("kinematic", "all")})


class _SetBlock(nn.Module):
    """Pre-norm self-attention + MLP block over a padded set (padding keys masked)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        heads = math.gcd(dim, 4)
        self.norm1 = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, h: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
        """Update the particle states.

        Args:
            h: ``[B, P, H]`` states.
            pad: ``[B, P]`` True at padding (masked as keys).

        Returns:
            ``[B, P, H]``.
        """
        a = self.norm1(h)  # [B, P, H]
        h = h + self.attn(a, a, a, key_padding_mask=pad, need_weights=False)[0]  # [B, P, H]
        return h + self.mlp(self.norm2(h))  # [B, P, H]


class _SetMLP(nn.Module):
    """Per-particle MLP in, ``layers`` set blocks, per-particle projection out."""

    def __init__(self, d_in: int, hidden: int, d_out: int, layers: int) -> None:
        super().__init__()
        self.inp = nn.Sequential(nn.Linear(d_in, hidden), nn.GELU(), nn.Linear(hidden, hidden))
        self.blocks = nn.ModuleList(_SetBlock(hidden) for _ in range(layers))
        self.out = nn.Sequential(nn.LayerNorm(hidden), nn.Linear(hidden, d_out))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Map every particle, in the context of its jet.

        Args:
            x: ``[B, P, d_in]`` inputs.
            mask: ``[B, P]`` True for real particles.

        Returns:
            ``[B, P, d_out]`` (padding rows are meaningless).
        """
        h = self.inp(x)  # [B, P, H]
        pad = ~mask
        pad[:, 0] &= mask.any(1)  # an empty jet attends to slot 0 (ignored) instead of NaN
        for blk in self.blocks:
            h = blk(h, pad)  # [B, P, H]
        return self.out(h)  # [B, P, d_out]


def _dist_ready() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


class VQVAE(nn.Module):
    """VQ-VAE over the particles of a jet; see the module docstring for the design.

    Args:
        in_dim: per-particle input features ``F``.
        codebook_size: number of codes ``K``.
        code_dim: code vector width ``C``.
        hidden: encoder/decoder width.
        layers: self-attention blocks in encoder and decoder (0: per-particle MLPs).
        update: ``"ema"`` (moving-average codebook) or ``"st"`` (gradient-trained codebook).
        beta: commitment-loss weight.
        decay: EMA decay.
        restart_every: training steps between dead-code restarts (0: never).
        restart_threshold: codes hit on average fewer times than this per training step since
            the last check are restarted.
        reconstruct: ``"kinematic"`` (features 0-6) or ``"all"`` features in the loss.
    """

    def __init__(
        self,
        in_dim: int,
        codebook_size: int = 512,
        code_dim: int = 8,
        hidden: int = 128,
        layers: int = 1,
        update: str = "ema",
        beta: float = 0.25,
        decay: float = 0.99,
        restart_every: int = 50,
        restart_threshold: float = 1.0,
        reconstruct: str = "kinematic",
    ) -> None:
        super().__init__()
        if update not in ("ema", "st"):
            raise ValueError(f"update must be 'ema' or 'st', got {update!r}")
        if reconstruct not in ("kinematic", "all"):
            raise ValueError(f"reconstruct must be 'kinematic' or 'all', got {reconstruct!r}")
        self.in_dim, self.codebook_size, self.code_dim = in_dim, codebook_size, code_dim
        self.update, self.beta, self.decay = update, beta, decay
        self.restart_every, self.restart_threshold = restart_every, restart_threshold
        self.n_target = min(N_KINEMATIC, in_dim) if reconstruct == "kinematic" else in_dim
        self.encoder = _SetMLP(in_dim, hidden, code_dim, layers)
        self.decoder = _SetMLP(code_dim, hidden, in_dim, layers)
        self.codebook = nn.Parameter(
            torch.randn(codebook_size, code_dim), requires_grad=update == "st"
        )
        self.register_buffer("ema_count", torch.ones(codebook_size))
        self.register_buffer("ema_sum", self.codebook.detach().clone())
        self.register_buffer("hits", torch.zeros(codebook_size))
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))
        self.register_buffer("feat_mean", torch.zeros(in_dim))
        self.register_buffer("feat_std", torch.ones(in_dim))
        self.register_buffer("initialised", torch.zeros((), dtype=torch.bool))

    # ------------------------------------------------------------------ encoding
    def _normalise(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.feat_mean) / self.feat_std  # [B, P, F]

    def encode(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Continuous encoder outputs.

        Args:
            x: ``[B, P, F]`` features.
            mask: ``[B, P]`` real-particle mask.

        Returns:
            ``[B, P, C]`` (padding rows are meaningless).
        """
        return self.encoder(self._normalise(x.float()), mask)  # [B, P, C]

    def _nearest(self, z: torch.Tensor) -> torch.Tensor:
        e = self.codebook.detach()  # [K, C]
        d = z.pow(2).sum(-1, keepdim=True) - 2 * z @ e.T + e.pow(2).sum(-1)  # [N, K]
        return d.argmin(-1)  # [N]

    @torch.no_grad()
    def tokenize(
        self, x: torch.Tensor, mask: torch.Tensor, vectors: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Code index of every real particle.

        Args:
            x: ``[B, P, F]`` features.
            mask: ``[B, P]`` real-particle mask.
            vectors: unused (accepted for the common model signature).

        Returns:
            ``[B, P]`` int64 code ids in ``[0, codebook_size)``; ``-1`` at padding.
        """
        z = self.encode(x, mask)  # [B, P, C]
        ids = self._nearest(z.reshape(-1, self.code_dim)).view(mask.shape)  # [B, P]
        return ids.masked_fill(~mask, -1)  # [B, P]

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor, vectors: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Same as :meth:`tokenize` (what ``colliderfm.load(path)(x, mask)`` returns).

        Args:
            x: ``[B, P, F]`` features.
            mask: ``[B, P]`` real-particle mask.
            vectors: unused.

        Returns:
            ``[B, P]`` code ids, ``-1`` at padding.
        """
        return self.tokenize(x, mask)  # [B, P]

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Encode, quantise and decode, in the original feature units.

        Args:
            x: ``[B, P, F]`` features.
            mask: ``[B, P]`` real-particle mask.

        Returns:
            ``[B, P, F]`` reconstructed features, zero at padding.
        """
        ids = self.tokenize(x, mask).clamp_min(0)  # [B, P]
        rec = self.decoder(self.codebook[ids], mask)  # [B, P, F]
        return (rec * self.feat_std + self.feat_mean) * mask.unsqueeze(-1)  # [B, P, F]

    # ------------------------------------------------------------------ training
    @torch.no_grad()
    def _first_batch_init(self, x: torch.Tensor, mask: torch.Tensor) -> None:
        real = x[mask].float()  # [N, F]
        self.feat_mean.copy_(real.mean(0))
        self.feat_std.copy_(real.std(0, unbiased=False).clamp_min(1e-2))
        z = self.encode(x, mask)[mask]  # [N, C]
        self._set_codes(torch.ones(self.codebook_size, dtype=torch.bool, device=z.device), z)
        self.initialised.fill_(True)
        if _dist_ready():
            for t in (self.feat_mean, self.feat_std, self.codebook.data, self.ema_sum):
                torch.distributed.broadcast(t, 0)

    @torch.no_grad()
    def _set_codes(self, which: torch.Tensor, z: torch.Tensor) -> None:
        n = int(which.sum())
        pick = (
            torch.randint(len(z), (n,), device=z.device)
            if len(z) < n
            else torch.randperm(len(z), device=z.device)[:n]
        )
        new = z[pick] + 1e-3 * z.std() * torch.randn(n, self.code_dim, device=z.device)  # [n, C]
        self.codebook.data[which] = new
        self.ema_sum[which] = new
        self.ema_count[which] = 1.0

    @torch.no_grad()
    def _ema_update(self, z: torch.Tensor, ids: torch.Tensor) -> None:
        counts = torch.bincount(ids, minlength=self.codebook_size).float()  # [K]
        sums = torch.zeros_like(self.ema_sum).index_add_(0, ids, z)  # [K, C]
        if _dist_ready():
            torch.distributed.all_reduce(counts)
            torch.distributed.all_reduce(sums)
        self.ema_count.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        self.ema_sum.mul_(self.decay).add_(sums, alpha=1 - self.decay)
        n, eps = self.ema_count.sum(), 1e-5
        smoothed = (self.ema_count + eps) / (n + self.codebook_size * eps) * n  # [K]
        self.codebook.data.copy_(self.ema_sum / smoothed.unsqueeze(-1))

    @torch.no_grad()
    def _restart_dead(self, z: torch.Tensor) -> int:
        hits = self.hits.clone()
        if _dist_ready():
            torch.distributed.all_reduce(hits)
        dead = hits < self.restart_threshold * self.restart_every  # [K]
        n_dead = int(dead.sum())
        if n_dead:
            self._set_codes(dead, z)
            if _dist_ready():
                torch.distributed.broadcast(self.codebook.data, 0)
                torch.distributed.broadcast(self.ema_sum, 0)
                torch.distributed.broadcast(self.ema_count, 0)
        self.hits.zero_()
        return n_dead

    def loss(self, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        """Reconstruction + commitment (+ codebook for ``update="st"``) loss on a batch.

        In training mode this also updates the EMA codebook, usage counts and restarts dead
        codes; in eval mode it only measures.

        Args:
            batch: jets (``features``, ``mask``).

        Returns:
            (scalar loss, logs: ``recon_mse``, ``commit``, ``perplexity``, ``usage`` (fraction
            of codes used in this batch), ``restarted`` (codes restarted at this step)).
        """
        x, mask = batch.features, batch.mask
        if self.training and not bool(self.initialised):
            self._first_batch_init(x, mask)
        xn = self._normalise(x.float())  # [B, P, F]
        z_full = self.encoder(xn, mask)  # [B, P, C]
        z = z_full[mask]  # [N, C]
        ids = self._nearest(z.detach())  # [N]
        e = self.codebook[ids]  # [N, C]
        commit = F.mse_loss(z, e.detach())
        loss = self.beta * commit
        if self.update == "st":
            loss = loss + F.mse_loss(e, z.detach())
        zq = z + (e - z).detach()  # [N, C] straight-through
        zq_full = torch.zeros_like(z_full).masked_scatter(  # [B, P, C]
            mask.unsqueeze(-1), zq.to(z_full.dtype)
        )
        rec = self.decoder(zq_full, mask)  # [B, P, F]
        t = self.n_target
        recon = F.mse_loss(rec[mask][:, :t], xn[mask][:, :t])
        loss = loss + recon
        counts = torch.bincount(ids, minlength=self.codebook_size).float()  # [K]
        p = counts / counts.sum().clamp_min(1)
        perplexity = torch.exp(-(p * p.clamp_min(1e-12).log()).sum())
        restarted = 0
        if self.training:
            with torch.no_grad():
                if self.update == "ema":
                    self._ema_update(z.detach().float(), ids)
                self.hits.add_(counts)
                self.steps.add_(1)
                if self.restart_every and int(self.steps) % self.restart_every == 0:
                    restarted = self._restart_dead(z.detach().float())
        logs = {
            "recon_mse": recon.item(),
            "commit": commit.item(),
            "perplexity": perplexity.item(),
            "usage": (counts > 0).float().mean().item(),
            "restarted": float(restarted),
        }
        return loss, logs


def vqvae_from_params(in_dim: int, params: VQVAEParams) -> VQVAE:
    """Build a tokenizer from its settings.

    Args:
        in_dim: per-particle input features.
        params: validated settings.

    Returns:
        A freshly initialised :class:`VQVAE`.
    """
    return VQVAE(in_dim, **asdict(params))


@register_builder("vqvae")
def build_vqvae(m: Any) -> nn.Module:
    """Rebuild a tokenizer from its checkpoint model spec (``model.task: vqvae``).

    Args:
        m: the :class:`~colliderfm.train.meta.ModelSpec` (``in_dim`` and ``params``).

    Returns:
        The tokenizer (random weights).
    """
    return vqvae_from_params(m.in_dim, VQVAEParams(**m.params))
