"""Building blocks of the set transformers: token layout, biased attention, blocks, pooling.

Speed on CPU comes from three things here:

* **Packing.** Per-token work (LayerNorm, Linear, GELU: ~85% of the FLOPs) runs on the real
  particles only, as a flat ``[N, D]`` tensor; padding never enters a matmul.
* **Length buckets.** Attention is the only place tokens meet. For it the jets of a batch are sorted
  by multiplicity and split into a few groups, each padded to its own longest jet, so the O(P^2)
  work (scores, softmax, pair bias) follows the real multiplicities instead of the batch maximum.
* **Fused kernels.** Without a learnable bias (no pair features, inference, frozen backbone, class
  attention) attention is ``scaled_dot_product_attention`` (fused flash kernel on CPU). With a
  learnable pair bias PyTorch's CPU dispatch falls back to its slower "math" kernel;
  :class:`BiasedAttention` is a leaner version of it (bias add fused into ``baddbmm``, the softmax
  output is the only ``P x P`` tensor kept, fused softmax backward). On GPU, SDPA is used always.

Padded key positions get ``-inf``; a jet without any real particle would have a row of ``-inf``
only, so for such jets every key is allowed instead (their outputs are discarded anyway).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class _GatherRows(torch.autograd.Function):
    """``t[index]`` for unique ``index``; backward is a plain scatter (no atomic adds)."""

    @staticmethod
    def forward(ctx, t, index):  # type: ignore[override]
        ctx.save_for_backward(index)
        ctx.n_rows = t.shape[0]
        return t.index_select(0, index)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        (index,) = ctx.saved_tensors
        out = grad.new_zeros(ctx.n_rows, grad.shape[1])
        return out.index_copy_(0, index, grad), None


class _ScatterRows(torch.autograd.Function):
    """Zeros ``[n_rows, C]`` with ``out[index] = t`` (unique ``index``); backward is a gather."""

    @staticmethod
    def forward(ctx, t, index, n_rows):  # type: ignore[override]
        ctx.save_for_backward(index)
        return t.new_zeros(n_rows, t.shape[1]).index_copy_(0, index, t)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        (index,) = ctx.saved_tensors
        return grad.index_select(0, index), None, None


def gather_rows(t: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Rows ``t[index]`` for unique indices.

    Args:
        t: ``[M, C]`` tensor.
        index: ``[K]`` unique row indices.

    Returns:
        ``[K, C]``.
    """
    return _GatherRows.apply(t, index)


def scatter_rows(t: torch.Tensor, index: torch.Tensor, n_rows: int) -> torch.Tensor:
    """Zeros ``[n_rows, C]`` with row ``index[i]`` set to ``t[i]`` (unique indices).

    Args:
        t: ``[K, C]`` tensor.
        index: ``[K]`` unique row indices.
        n_rows: rows of the output.

    Returns:
        ``[n_rows, C]``.
    """
    return _ScatterRows.apply(t, index, n_rows)


class TokenLayout:
    """Where the real particles of a padded batch live, and how attention groups them.

    Built once per batch from the mask. Tokens travel through the network as a flat ``[N, C]``
    tensor (``N`` = number of real particles when packing, ``B*P`` otherwise).
    """

    def __init__(self, mask: torch.Tensor, pack: bool = True, buckets: int = 1) -> None:
        """Index the batch.

        Args:
            mask: ``[B, P]`` bool, True for real particles.
            pack: drop padding from per-token work (else every position is a token).
            buckets: number of multiplicity groups for attention (only with ``pack``).
        """
        b, p = mask.shape
        self.batch, self.length = b, p
        dev = mask.device
        self.flat_index: torch.Tensor | None = None  # [N] real positions in the flat [B*P]
        self.jet_order: torch.Tensor | None = None  # [B] jets in group order
        self.scatter_index: torch.Tensor | None = None  # [N] row of each token in the groups
        if not pack:
            self.n_tokens = self.n_rows = b * p
            self.groups = [(b, p)]
            self.key_masks = [mask | ~mask.any(dim=1, keepdim=True)]  # [B, P]
            return
        counts = mask.sum(dim=1)  # [B]
        self.flat_index = mask.reshape(-1).nonzero().squeeze(1)  # [N]
        self.n_tokens = int(self.flat_index.numel())
        offsets = torch.cumsum(counts, 0) - counts  # [B]
        order = torch.argsort(counts, stable=True)  # [B] jets by multiplicity
        self.jet_order = order
        counts_sorted = counts[order].tolist()
        n_groups = max(1, min(buckets, b))
        bounds = [round(i * b / n_groups) for i in range(n_groups + 1)]
        self.groups = []
        gathers, key_masks = [], []
        for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
            if hi <= lo:
                continue
            jets = order[lo:hi]  # [Bg]
            pg = max(1, counts_sorted[hi - 1])
            pos = torch.arange(pg, device=dev)  # [Pg]
            real = pos.unsqueeze(0) < counts[jets].unsqueeze(1)  # [Bg, Pg]
            src = torch.where(real, offsets[jets].unsqueeze(1) + pos, self.n_tokens)  # [Bg, Pg]
            gathers.append(src.reshape(-1))
            key_masks.append(real | ~real.any(dim=1, keepdim=True))
            self.groups.append((hi - lo, pg))
        self.key_masks = key_masks
        gather = torch.cat(gathers)  # [R] rows of all groups -> token (N = the zero row)
        rows = (gather < self.n_tokens).nonzero().squeeze(1)  # [N]
        scatter = torch.empty(self.n_tokens, dtype=torch.long, device=dev)
        scatter[gather[rows]] = rows
        self.scatter_index = scatter
        self.n_rows = int(gather.numel())

    def flatten(self, t: torch.Tensor) -> torch.Tensor:
        """Padded ``[B, P, C]`` -> flat tokens ``[N, C]`` (padding dropped when packing).

        Args:
            t: ``[B, P, C]`` tensor.

        Returns:
            ``[N, C]`` tensor.
        """
        flat = t.reshape(self.batch * self.length, -1)  # [B*P, C]
        return flat if self.flat_index is None else gather_rows(flat, self.flat_index)

    def unflatten(self, t: torch.Tensor) -> torch.Tensor:
        """Flat tokens ``[N, C]`` -> padded ``[B, P, C]`` (zeros at padding when packing).

        Args:
            t: ``[N, C]`` tensor.

        Returns:
            ``[B, P, C]`` tensor.
        """
        if self.flat_index is None:
            return t.view(self.batch, self.length, -1)
        out = scatter_rows(t, self.flat_index, self.batch * self.length)  # [B*P, C]
        return out.view(self.batch, self.length, -1)

    def to_groups(self, t: torch.Tensor) -> list[torch.Tensor]:
        """Flat tokens ``[N, C]`` -> one padded ``[Bg, Pg, C]`` tensor per group (zero padding).

        Args:
            t: ``[N, C]`` tensor.

        Returns:
            List of ``[Bg, Pg, C]`` tensors, jets in group order (:meth:`jets_from_groups`).
        """
        if self.scatter_index is None:
            return [t.view(self.batch, self.length, -1)]
        rows = scatter_rows(t, self.scatter_index, self.n_rows)  # [R, C]
        sizes = [bg * pg for bg, pg in self.groups]
        return [
            r.view(bg, pg, -1) for r, (bg, pg) in zip(rows.split(sizes), self.groups, strict=True)
        ]

    def from_groups(self, parts: list[torch.Tensor]) -> torch.Tensor:
        """Inverse of :meth:`to_groups` for the real tokens.

        Args:
            parts: list of ``[Bg, Pg, C]`` tensors.

        Returns:
            ``[N, C]`` tensor.
        """
        if self.scatter_index is None:
            return parts[0].reshape(self.n_tokens, -1)
        rows = torch.cat([q.reshape(-1, q.shape[-1]) for q in parts])  # [R, C]
        return gather_rows(rows, self.scatter_index)  # [N, C]

    def jets_from_groups(self, t: torch.Tensor) -> torch.Tensor:
        """Per-jet ``[B, ...]`` in group order -> batch order.

        Args:
            t: ``[B, ...]`` tensor.

        Returns:
            ``[B, ...]`` tensor.
        """
        if self.jet_order is None:
            return t
        out = torch.empty_like(t)
        return out.index_copy(0, self.jet_order, t)


def key_padding_bias(key_mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Additive attention bias from a key mask.

    Args:
        key_mask: ``[B, P]`` bool, True where a key may be attended to.
        dtype: bias dtype.

    Returns:
        ``[B, 1, 1, P]``: 0 on allowed keys, ``-inf`` elsewhere.
    """
    b, p = key_mask.shape
    bias = torch.zeros(b, 1, 1, p, dtype=dtype, device=key_mask.device)  # [B, 1, 1, P]
    return bias.masked_fill_(~key_mask.view(b, 1, 1, p), float("-inf"))


class BiasedAttention(torch.autograd.Function):
    """``softmax(q k^T / sqrt(d) + bias) v`` with a gradient for ``bias`` (materialised scores).

    Same maths as PyTorch's math SDPA kernel with fewer passes over the ``[B, H, P, P]`` tensors:
    the bias add is fused into ``baddbmm``, softmax is in place and only its output is saved, the
    backward uses the fused softmax gradient. Runs in the dtype of ``q``.
    """

    @staticmethod
    def forward(ctx, q, k, v, bias):  # type: ignore[override]
        b, h, p, d = q.shape
        scale = 1.0 / math.sqrt(d)
        ctx.device_type = q.device.type
        with torch.autocast(q.device.type, enabled=False):
            qs = (q * scale).reshape(b * h, p, d)  # [B*H, P, d] scaled, contiguous
            k3, v3 = (t.reshape(b * h, p, d) for t in (k, v))  # [B*H, P, d]
            bias3 = bias.to(q.dtype).expand(b, h, p, p).reshape(b * h, p, p)  # [B*H, P, P]
            probs = torch.baddbmm(bias3, qs, k3.transpose(1, 2))  # [B*H, P, P] scores
            probs = torch.softmax(probs, dim=-1)  # [B*H, P, P]
            out = torch.bmm(probs, v3)  # [B*H, P, d]
        ctx.save_for_backward(qs, k3, v3, probs)
        ctx.shape = (b, h, p, d)
        ctx.bias_shape = bias.shape
        return out.view(b, h, p, d)

    @staticmethod
    def backward(ctx, grad_out):  # type: ignore[override]
        qs, k3, v3, probs = ctx.saved_tensors
        b, h, p, d = ctx.shape
        with torch.autocast(ctx.device_type, enabled=False):
            go = grad_out.reshape(b * h, p, d).to(probs.dtype)  # [B*H, P, d]
            grad_v = torch.bmm(probs.transpose(1, 2), go)  # [B*H, P, d]
            grad_p = torch.bmm(go, v3.transpose(1, 2))  # [B*H, P, P]
            grad_s = torch._softmax_backward_data(grad_p, probs, -1, probs.dtype)  # [B*H, P, P]
            grad_q = torch.baddbmm(qs, grad_s, k3, beta=0.0, alpha=1.0 / math.sqrt(d))  # [B*H,P,d]
            grad_k = torch.bmm(grad_s.transpose(1, 2), qs)  # [B*H, P, d]
        grad_bias = grad_s.view(b, h, p, p)  # [B, H, P, P]
        if tuple(ctx.bias_shape) != (b, h, p, p):
            dims = [i for i, n in enumerate(ctx.bias_shape) if n == 1]
            grad_bias = grad_bias.sum(dim=dims, keepdim=True)
        return (
            grad_q.view(b, h, p, d),
            grad_k.view(b, h, p, d),
            grad_v.view(b, h, p, d),
            grad_bias,
        )


def attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor
) -> torch.Tensor:
    """Multi-head attention with an additive bias, picking the fastest CPU kernel.

    Args:
        q: ``[B, H, Pq, d]`` queries.
        k: ``[B, H, Pk, d]`` keys.
        v: ``[B, H, Pk, d]`` values.
        bias: ``[B, H or 1, Pq or 1, Pk]`` additive bias (``-inf`` = masked).

    Returns:
        ``[B, H, Pq, d]`` attention output.
    """
    if (
        bias.requires_grad
        and torch.is_grad_enabled()
        and q.shape[2] == k.shape[2]
        and q.device.type == "cpu"
    ):  # GPU SDPA kernels have a fused bias gradient
        return BiasedAttention.apply(q, k, v, bias)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype))


class MLP(nn.Module):
    """Two-layer GELU MLP applied per token (optionally LayerNorm on the hidden layer)."""

    def __init__(self, dim: int, hidden: int, dropout: float = 0.0, mid_norm: bool = False) -> None:
        """Build the MLP.

        Args:
            dim: input and output width.
            hidden: hidden width.
            dropout: dropout after the output projection.
            mid_norm: LayerNorm after the activation (NormFormer / ParT ``scale_fc``).
        """
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.mid = nn.LayerNorm(hidden) if mid_norm else nn.Identity()
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the MLP.

        Args:
            x: ``[..., D]`` tokens.

        Returns:
            ``[..., D]``.
        """
        return self.drop(self.fc2(self.mid(F.gelu(self.fc1(x)))))  # [..., D]


class _Scales(nn.Module):
    """NormFormer-style extras of ParT's blocks: LayerNorm after attention, learned per-head
    scales of the attention output and a learned per-channel scale of the MLP's residual."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_scale = nn.Parameter(torch.ones(num_heads))
        self.post_attn_norm = nn.LayerNorm(dim)
        self.resid_scale = nn.Parameter(torch.ones(dim))

    def attn_out(self, a: torch.Tensor) -> torch.Tensor:
        """Scale heads, then normalise: ``[N, D] -> [N, D]``."""
        n, dim = a.shape
        a = (a.view(n, self.num_heads, -1) * self.head_scale.view(1, -1, 1)).view(n, dim)
        return self.post_attn_norm(a)


class ParticleBlock(nn.Module):
    """Pre-norm transformer block over the particles of each jet (optionally pair-biased)."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        dropout: float = 0.0,
        normformer: bool = False,
    ) -> None:
        """Build the block.

        Args:
            dim: token width ``D`` (divisible by ``num_heads``).
            num_heads: attention heads.
            mlp_ratio: MLP hidden width / ``D``.
            dropout: dropout on both residual branches.
            normformer: add ParT's extra norms and scales (``scale_attn``, ``scale_fc``,
                ``scale_heads``, ``scale_resids`` in weaver-core).
        """
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"embed_dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = MLP(dim, int(dim * mlp_ratio), dropout, mid_norm=normformer)
        self.scales = _Scales(dim, num_heads) if normformer else None

    def forward(
        self, x: torch.Tensor, layout: TokenLayout, biases: list[torch.Tensor]
    ) -> torch.Tensor:
        """Apply the block.

        Args:
            x: ``[N, D]`` flat tokens.
            layout: the batch's :class:`TokenLayout`.
            biases: per attention group, ``[Bg, H or 1, Pg or 1, Pg]`` additive bias.

        Returns:
            ``[N, D]`` updated tokens.
        """
        n, dim = x.shape
        h = self.num_heads
        qkv = self.qkv(self.norm1(x))  # [N, 3D]
        outs = []
        for part, bias in zip(layout.to_groups(qkv), biases, strict=True):  # [Bg, Pg, 3D]
            bg, pg, _ = part.shape
            q, k, v = part.view(bg, pg, 3, h, dim // h).permute(2, 0, 3, 1, 4)  # [Bg, H, Pg, d]
            o = attention(q, k, v, bias)  # [Bg, H, Pg, d]
            outs.append(o.transpose(1, 2).reshape(bg, pg, dim))  # [Bg, Pg, D]
        a = self.proj(layout.from_groups(outs))  # [N, D]
        if self.scales is not None:
            a = self.scales.attn_out(a)  # [N, D]
            x = x + self.drop(a)  # [N, D]
            return self.scales.resid_scale * x + self.mlp(self.norm2(x))  # [N, D]
        x = x + self.drop(a)  # [N, D]
        return x + self.mlp(self.norm2(x))  # [N, D]


class ClassAttentionBlock(nn.Module):
    """Class attention (CaiT / ParT): a class token attends to itself and the particles."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        dropout: float = 0.0,
        normformer: bool = False,
    ) -> None:
        """Build the block.

        Args:
            dim: token width ``D``.
            num_heads: attention heads.
            mlp_ratio: MLP hidden width / ``D``.
            dropout: dropout on both residual branches.
            normformer: ParT's extra norms and scales (see :class:`ParticleBlock`).
        """
        super().__init__()
        self.num_heads = num_heads
        self.norm1 = nn.LayerNorm(dim)
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = MLP(dim, int(dim * mlp_ratio), dropout, mid_norm=normformer)
        self.scales = _Scales(dim, num_heads) if normformer else None

    def forward(
        self, cls: torch.Tensor, x: torch.Tensor, layout: TokenLayout, biases: list[torch.Tensor]
    ) -> torch.Tensor:
        """Update the class tokens.

        Args:
            cls: ``[B, D]`` class tokens, jets in group order (see
                :meth:`TokenLayout.jets_from_groups`).
            x: ``[N, D]`` flat particle tokens.
            layout: the batch's :class:`TokenLayout`.
            biases: per group, ``[Bg, 1, 1, 1+Pg]`` key bias (class token first).

        Returns:
            ``[B, D]`` updated class tokens (group order).
        """
        dim, h = cls.shape[1], self.num_heads
        d = dim // h
        c = self.norm1(cls)  # [B, D]
        kv_cls = self.kv(c)  # [B, 2D]
        q_all = self.q(c)  # [B, D]
        kv = self.kv(self.norm1(x))  # [N, 2D]
        outs, start = [], 0
        for part, bias in zip(layout.to_groups(kv), biases, strict=True):  # [Bg, Pg, 2D]
            bg, pg, _ = part.shape
            sl = slice(start, start + bg)
            start += bg
            kvg = torch.cat((kv_cls[sl].unsqueeze(1), part), dim=1)  # [Bg, 1+Pg, 2D]
            k, v = kvg.view(bg, pg + 1, 2, h, d).permute(2, 0, 3, 1, 4)  # [Bg, H, 1+Pg, d]
            q = q_all[sl].view(bg, 1, h, d).transpose(1, 2)  # [Bg, H, 1, d]
            o = attention(q, k, v, bias)  # [Bg, H, 1, d]
            outs.append(o.reshape(bg, dim))  # [Bg, D]
        a = self.proj(torch.cat(outs))  # [B, D]
        if self.scales is not None:
            cls = cls + self.drop(self.scales.attn_out(a))  # [B, D]
            return self.scales.resid_scale * cls + self.mlp(self.norm2(cls))  # [B, D]
        cls = cls + self.drop(a)  # [B, D]
        return cls + self.mlp(self.norm2(cls))  # [B, D]


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the real particles (0 for a jet without any).

    Args:
        x: ``[B, P, D]`` tokens.
        mask: ``[B, P]`` bool, True for real particles.

    Returns:
        ``[B, D]`` pooled vector.
    """
    keep = mask.unsqueeze(-1)  # [B, P, 1]
    total = torch.where(keep, x, 0.0).sum(1)  # [B, D]
    return total / keep.sum(1).clamp_min(1).to(x.dtype)  # [B, D]
