"""Masked particle modelling (MPM; Golling et al., "Masked particle modeling on sets", 2024).

For every jet, ``mask_fraction`` of its real particles (at least one; padding never) are chosen
at random. Their input features are replaced by a learned mask vector and their four-vectors
are set to zero before the backbone, so neither the particle embedding nor the pairwise
attention bias (ParT's ln kT, ln z, ln Delta, ln m^2 -- zero vectors give the same finite
"null particle" values as self-pairs) can see them. A per-particle head on the backbone tokens
at the masked positions then predicts either

* ``target: tokens`` -- the particle's code id from a frozen VQ-VAE tokenizer run on the
  *unmasked* jet (cross-entropy), or
* ``target: continuous`` -- the particle's input features directly (MSE or Huber).

The tokenizer is a frozen submodule (eval mode, no gradients), so its weights travel inside the
pretraining checkpoint; its structure is built from the params here, its weights are loaded in
:meth:`MaskedParticleModelling.load_tokenizer` (from ``tokenizer``, or from one the pretraining
recipe trains first into ``out/tokenizer`` when ``tokenizer`` is null: an explicit first stage,
see :meth:`MaskedParticleModelling.tokenizer_request`).

``positional: pt_order`` (the MPM paper's ordering study) adds a learned embedding of each
particle's pT rank (from feature 0, ``log_pt``) to the backbone's input features. This breaks the
permutation invariance of the backbone's input and is off by default.

``decoder_depth > 0`` switches to the encoder-decoder layout of MPMv2 (Leigh et al., "Is
tokenization needed for masked particle modelling?", 2024) and of MAE: the masked particles are
*removed* (the backbone sees only the visible particles, a real sub-jet, never a mask token), and a
small transformer decoder, discarded after pretraining, gets the backbone's tokens plus one learned
mask query per hidden particle and predicts the targets there. With ``positional: pt_order`` the
pT-rank embedding then goes to the decoder's mask queries only -- it tells the decoder *which*
hidden particle to predict (without it all queries of a jet are identical and can only predict
the marginal of the hidden particles) while the backbone stays permutation invariant.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from colliderfm.data.schema import Batch
from colliderfm.errors import CheckpointError, ConfigError
from colliderfm.models.blocks import ParticleBlock, TokenLayout, key_padding_bias
from colliderfm.models.heads import TokenHead
from colliderfm.pretrain.base import Objective, register_objective
from colliderfm.tokenizers.vqvae import VQVAE, VQVAEParams
from colliderfm.train.checkpoint import load_weights, read_checkpoint_meta
from colliderfm.train.logging import log

MAX_RANK = 256  # pT ranks beyond this share the last positional embedding

#: VQ-VAE structure key -> the MPM param that must match it
_TOKENIZER_KEYS = {
    "codebook_size": "codebook_size",
    "code_dim": "code_dim",
    "hidden": "tokenizer_hidden",
    "layers": "tokenizer_layers",
}


@dataclass
class MPMParams:
    """Settings of masked particle modelling (``objective.params``)."""

    mask_fraction: float = field(default=0.4, metadata={"range": (0.0, 1.0)})
    target: str = field(default="tokens", metadata={"choices": ("tokens", "continuous")})
    regression_loss: str = field(default="mse", metadata={"choices": ("mse", "huber")})
    tokenizer: str | None = None
    tokenizer_steps: int = field(default=2000, metadata={"range": (1, None)})
    tokenizer_lr: float = field(default=1e-3, metadata={"range": (0.0, None)})
    codebook_size: int = field(default=512, metadata={"range": (2, 1 << 16)})
    code_dim: int = field(default=8, metadata={"range": (1, 1024)})
    tokenizer_hidden: int = field(default=128, metadata={"range": (4, 4096)})
    tokenizer_layers: int = field(default=1, metadata={"range": (0, 16)})
    positional: str = field(default="none", metadata={"choices": ("none", "pt_order")})
    head_hidden: int | None = field(default=None, metadata={"range": (1, None)})
    decoder_depth: int = field(default=0, metadata={"range": (0, 16)})
    decoder_heads: int = field(default=4, metadata={"range": (1, 64)})


def choose_masked(mask: torch.Tensor, fraction: float) -> torch.Tensor:
    """Pick ``round(fraction * n)`` (at least 1) random real particles of every jet.

    Args:
        mask: ``[B, P]`` bool, True for real particles.
        fraction: share of each jet's real particles to mask.

    Returns:
        ``[B, P]`` bool, True for masked particles (never at padding; none for empty jets).
    """
    n_real = mask.sum(1)  # [B]
    n_mask = torch.round(n_real * fraction).clamp_min(1).minimum(n_real)  # [B]
    scores = torch.rand(mask.shape, device=mask.device).masked_fill(~mask, 2.0)  # [B, P]
    rank = scores.argsort(1).argsort(1)  # [B, P] rank of each slot within its jet
    return (rank < n_mask.unsqueeze(1)) & mask  # [B, P]


def pt_rank(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """pT rank of every particle within its jet (0 = hardest), from feature 0 (``log_pt``).

    Args:
        x: ``[B, P, F]`` features.
        mask: ``[B, P]`` real-particle mask.

    Returns:
        ``[B, P]`` int64 ranks, clamped to ``MAX_RANK - 1`` (padding ranks come last).
    """
    key = x[..., 0].float().masked_fill(~mask, float("-inf"))  # [B, P]
    rank = key.argsort(dim=1, descending=True, stable=True).argsort(1)  # [B, P]
    return rank.clamp_max(MAX_RANK - 1)


class SetDecoder(nn.Module):
    """Pretraining-only decoder: transformer blocks over visible tokens plus mask queries.

    Args:
        dim: token width ``D`` (the backbone's).
        depth: number of blocks.
        num_heads: attention heads (must divide ``D``).
    """

    def __init__(self, dim: int, depth: int, num_heads: int) -> None:
        super().__init__()
        if dim % num_heads:
            raise ConfigError(
                f"objective.params.decoder_heads={num_heads} does not divide the backbone "
                f"width {dim}"
            )
        self.blocks = nn.ModuleList(ParticleBlock(dim, num_heads) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Decode.

        Args:
            tokens: ``[B, P, D]`` visible tokens and mask queries.
            mask: ``[B, P]`` bool, True for real (visible or hidden) particles.

        Returns:
            ``[B, P, D]`` decoded tokens (zero at padding).
        """
        layout = TokenLayout(mask)
        h = layout.flatten(tokens)  # [N, D]
        biases = [key_padding_bias(km, h.dtype) for km in layout.key_masks]  # [Bg, 1, 1, Pg]
        for blk in self.blocks:
            h = blk(h, layout, biases)  # [N, D]
        return layout.unflatten(self.norm(h))  # [B, P, D]


@register_objective("mpm", MPMParams)
class MaskedParticleModelling(Objective):
    """Masked particle modelling with token (VQ-VAE) or continuous targets.

    Args:
        params: validated :class:`MPMParams`.
        backbone_dim: backbone token width ``D``.
        in_dim: per-particle input features ``F``.
    """

    @classmethod
    def trains_pooling(cls, params: Any) -> bool:
        """False: the loss is on the particle tokens only (see :meth:`Objective.trains_pooling`)."""
        return False

    def __init__(self, params: MPMParams, backbone_dim: int, in_dim: int) -> None:
        super().__init__(params, backbone_dim, in_dim)
        use_decoder = params.decoder_depth > 0
        # mask vector: in feature space for the backbone, in token space for the decoder
        self.mask_token = nn.Parameter(0.02 * torch.randn(backbone_dim if use_decoder else in_dim))
        self.decoder = (
            SetDecoder(backbone_dim, params.decoder_depth, params.decoder_heads)
            if use_decoder
            else None
        )
        self.rank_embed = (
            nn.Embedding(MAX_RANK, backbone_dim if use_decoder else in_dim)
            if params.positional == "pt_order"
            else None
        )
        if self.rank_embed is not None:
            nn.init.normal_(self.rank_embed.weight, std=0.02)
        self.tokenizer: VQVAE | None = None
        n_out = in_dim
        if params.target == "tokens":
            self.tokenizer = VQVAE(in_dim, **self._tokenizer_structure())
            self.tokenizer.requires_grad_(False)
            self.tokenizer.eval()
            n_out = params.codebook_size
        h = params.head_hidden
        self.head: nn.Module = (
            TokenHead(backbone_dim, n_out)
            if h is None
            else nn.Sequential(nn.Linear(backbone_dim, h), nn.GELU(), nn.Linear(h, n_out))
        )

    def _tokenizer_structure(self) -> dict[str, Any]:
        p = self.params
        return {k: getattr(p, mk) for k, mk in _TOKENIZER_KEYS.items()}

    def train(self, mode: bool = True) -> MaskedParticleModelling:
        """Set training mode; the frozen tokenizer always stays in eval mode.

        Args:
            mode: training (True) or eval (False).

        Returns:
            self.
        """
        super().train(mode)
        if self.tokenizer is not None:
            self.tokenizer.eval()
        return self

    # ------------------------------------------------------------------ tokenizer stage
    def tokenizer_request(self, cfg: Any) -> str | Any | None:
        """The tokenizer stage this objective needs before pretraining.

        Every check on a given tokenizer (exists, is a VQ-VAE checkpoint, same features and
        structure) happens before any pretraining step: existence here, the rest in
        :meth:`load_tokenizer`.

        Args:
            cfg: the run's config.

        Returns:
            None with ``target: continuous``; the given ``tokenizer`` path; or, when
            ``tokenizer`` is null, the config of a VQ-VAE with this objective's structure for the
            recipe to train first (``tokenizer_steps`` at ``tokenizer_lr``, no validation).
        """
        from colliderfm.config import ObjectiveConfig

        p = self.params
        if p.target != "tokens":
            if p.tokenizer is not None:
                log.warning("objective.params.tokenizer is ignored with target: continuous")
            return None
        if p.tokenizer is not None:
            if not Path(p.tokenizer).exists():
                raise ConfigError(
                    f"objective.params.tokenizer: {p.tokenizer} does not exist (train one "
                    "with configs/pretrain/vqvae.yaml, or set it to null to train "
                    "one first)"
                )
            return p.tokenizer
        params = dataclasses.asdict(VQVAEParams(**self._tokenizer_structure()))
        return dataclasses.replace(
            cfg,
            data=dataclasses.replace(cfg.data, val=None),
            objective=ObjectiveConfig(name="vqvae", params=params),
            train=dataclasses.replace(
                cfg.train,
                max_steps=p.tokenizer_steps,
                stop_at_step=None,  # the pause is the pretraining's, not the tokenizer's
                lr=p.tokenizer_lr,
                early_stopping=None,
                checkpoint_every=None,
            ),
        )

    def load_tokenizer(self, path: str | Path, feature_set: str) -> None:
        """Check a tokenizer checkpoint against this objective and load its weights.

        Args:
            path: VQ-VAE checkpoint directory.
            feature_set: the run's ``data.features``.
        """
        m = read_checkpoint_meta(path).model
        if m.task != "vqvae":
            raise CheckpointError(
                f"{path}: not a VQ-VAE tokenizer checkpoint (it holds a '{m.task}' model)"
            )
        if m.in_dim != self.in_dim or m.feature_set != feature_set:
            raise CheckpointError(
                f"{path}: tokenizer was trained on feature set '{m.feature_set}' "
                f"({m.in_dim} features) but this run uses '{feature_set}' "
                f"({self.in_dim} features)"
            )
        for key, mkey in _TOKENIZER_KEYS.items():
            have, want = (m.params or {}).get(key), getattr(self.params, mkey)
            if have != want:
                raise CheckpointError(
                    f"{path}: tokenizer has {key}={have} but "
                    f"objective.params.{mkey}={want} (use --set "
                    f"objective.params.{mkey}={have})"
                )
        assert self.tokenizer is not None
        load_weights(self.tokenizer, path)
        self.tokenizer.eval()

    # ------------------------------------------------------------------ loss
    def _decode(
        self,
        backbone: nn.Module,
        x: torch.Tensor,
        mask: torch.Tensor,
        vectors: torch.Tensor | None,
        sel: torch.Tensor,
    ) -> torch.Tensor:
        """Encode the visible particles only, then decode with mask queries at ``sel``.

        Args:
            backbone: the shared backbone.
            x: ``[B, P, F]`` features.
            mask: ``[B, P]`` real particles.
            vectors: ``[B, P, 4]`` or None.
            sel: ``[B, P]`` hidden particles.

        Returns:
            ``[B, P, D]`` decoder tokens.
        """
        assert self.decoder is not None
        visible = mask & ~sel  # [B, P]
        enc = backbone(x, visible, vectors)  # [B, P, D] (hidden particles are padding here)
        query = self.mask_token.to(enc.dtype).expand_as(enc)  # [B, P, D]
        if self.rank_embed is not None:
            query = query + self.rank_embed(pt_rank(x, mask)).to(enc.dtype)  # [B, P, D]
        dec_in = torch.where(sel.unsqueeze(-1), query, enc)  # [B, P, D]
        return self.decoder(dec_in, mask)  # [B, P, D]

    def loss(self, backbone: nn.Module, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        """Mask particles, encode the jet, predict the masked particles.

        Args:
            backbone: the shared backbone.
            batch: an unlabelled batch.

        Returns:
            (scalar loss, logs: ``mpm_loss``, ``mpm_acc`` (tokens) or ``mpm_mse``,
            ``masked_frac``).
        """
        x, mask, vectors = batch.features, batch.mask, batch.vectors
        sel = choose_masked(mask, self.params.mask_fraction)  # [B, P]
        if self.decoder is not None:
            tokens = self._decode(backbone, x, mask, vectors, sel)  # [B, P, D]
        else:
            x_in = torch.where(sel.unsqueeze(-1), self.mask_token.to(x.dtype), x)  # [B, P, F]
            if self.rank_embed is not None:
                x_in = x_in + self.rank_embed(pt_rank(x, mask)) * mask.unsqueeze(-1)  # [B, P, F]
            v_in = None if vectors is None else vectors.masked_fill(sel.unsqueeze(-1), 0.0)
            tokens = backbone(x_in, mask, v_in)  # [B, P, D]
        pred = self.head(tokens[sel]).float()  # [N, n_out]
        logs = {"masked_frac": float(sel.sum() / mask.sum().clamp_min(1))}
        if pred.shape[0] == 0:  # only empty jets: nothing to predict
            return tokens.sum() * 0.0, {**logs, "mpm_loss": 0.0}
        if self.tokenizer is not None:
            with torch.autocast(x.device.type, enabled=False):
                ids = self.tokenizer.tokenize(x.float(), mask)[sel]  # [N]
            loss = F.cross_entropy(pred, ids)
            logs["mpm_acc"] = float((pred.argmax(-1) == ids).float().mean())
        else:
            target = x[sel].float()  # [N, F]
            if self.params.regression_loss == "huber":
                loss = F.huber_loss(pred, target)
            else:
                loss = F.mse_loss(pred, target)
            logs["mpm_mse"] = float(F.mse_loss(pred.detach(), target))
        logs["mpm_loss"] = float(loss.detach())
        return loss, logs
