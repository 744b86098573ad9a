"""S4Rec's sequence augmentations (the paper's Appendix A; docs/s4rec.md, "Method choices"), vectorised over a
batch on the training device.

Every operator takes a left-padded batch of item indices ``(b, t)`` (0 = padding) and returns a left-padded
batch with the same padding convention; rows are processed together with sorts, cumulative sums and gathers,
never with per-row Python loops, and nothing is read back to the host (no ``.item()``, no boolean-mask
indexing), so a CUDA step never waits for the GPU. Histories of one item are returned unchanged.

* mask: replace ``floor(gamma * n)`` items by the padding index 0 (the encoder has no mask token and its state
  dict must not change; a 0 inside a history is simply an item the encoder cannot see);
* crop: keep one contiguous run of ``max(1, floor(eta * n))`` items;
* reorder: shuffle one contiguous run of ``floor(beta * n)`` items;
* insert: insert ``max(1, floor(ratio * n))`` items drawn from the catalogue's popularity distribution at
  random positions, then keep the most recent ``max_len``.

:func:`two_views` draws one operator per row and per view uniformly from the four.
"""

from __future__ import annotations

import math

import torch

from s4rec.windows import PADDING_INDEX

OPERATORS = ("mask", "crop", "reorder", "insert")


def _lengths(history: torch.Tensor) -> torch.Tensor:
    return (history != PADDING_INDEX).sum(1)  # (b,)


def _random_rank(valid: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """A uniformly random rank 0..m-1 of each valid position among its row's m valid positions (b, t).

    Invalid positions get ranks >= m, so ``rank < k`` picks k random valid positions of each row.
    """
    noise = torch.rand(valid.shape, device=valid.device, generator=generator)
    noise = noise.masked_fill(~valid, 2.0)  # sorted after every valid position
    return noise.argsort(1).argsort(1)


def _window_start(n: torch.Tensor, size: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """A uniform start in 0..n-size for each row (b,)."""
    u = torch.rand(n.shape, device=n.device, generator=generator)
    return (u * (n - size + 1).float()).long().clamp(min=0)


def mask(history: torch.Tensor, gamma: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Replace ``floor(gamma * n)`` random items of each history by 0 (rows with n = 1 unchanged)."""
    real = history != PADDING_INDEX
    n = real.sum(1, keepdim=True)  # (b, 1)
    count = torch.where(n > 1, (gamma * n).floor().long(), torch.zeros_like(n))
    hidden = _random_rank(real, generator) < count  # (b, t)
    return history.masked_fill(hidden & real, PADDING_INDEX)


def crop(history: torch.Tensor, eta: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Keep one random contiguous run of ``max(1, floor(eta * n))`` items, right-aligned again."""
    b, t = history.shape
    n = _lengths(history)  # (b,)
    size = (eta * n).floor().long().clamp(min=1)
    size = torch.where(n > 1, size, n)
    start = _window_start(n, size, generator)  # offset of the run inside the row's real items
    col = torch.arange(t, device=history.device)  # (t,)
    # Output column j holds run item j - (t - size); the run starts at column (t - n + start) of the input.
    source = (t - n + start - (t - size))[:, None] + col  # (b, t)
    keep = col >= (t - size)[:, None]
    out = history.gather(1, source.clamp(0, t - 1))
    return out.masked_fill(~keep, PADDING_INDEX)


def reorder(history: torch.Tensor, beta: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Shuffle one random contiguous run of ``floor(beta * n)`` items (runs shorter than 2 change nothing)."""
    b, t = history.shape
    n = _lengths(history)
    size = (beta * n).floor().long()
    start = t - n + _window_start(n, size, generator)  # column of the run's first item
    col = torch.arange(t, device=history.device).expand(b, t).float()
    inside = (col >= start[:, None]) & (col < (start + size)[:, None])
    # Sorting keys: columns outside the run keep their own; inside, a random key within the run's span, so
    # the sort permutes the run and nothing else.
    random_key = start[:, None] + torch.rand((b, t), device=history.device, generator=generator) * size[:, None]
    key = torch.where(inside, random_key - 0.5, col)
    return history.gather(1, key.argsort(1))


def insert(
    history: torch.Tensor,
    ratio: float,
    popularity_cdf: torch.Tensor,
    max_len: int,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Insert ``max(1, floor(ratio * n))`` popular items at random positions; keep the last ``max_len``.

    ``popularity_cdf`` (N,) is the cumulative item distribution over indices 1..N. The result is wider than
    the input by ``ceil(ratio * t)`` columns (at most ``max_len``), enough for every row's insertions.
    """
    b, t = history.shape
    extra = max(1, math.ceil(ratio * t))
    width = t + extra  # known on the host: no device read-back
    device = history.device
    n = _lengths(history)
    count = torch.where(n > 1, (ratio * n).floor().long().clamp(min=1), torch.zeros_like(n))
    total = n + count  # real items after insertion (b,)
    col = torch.arange(width, device=device)
    valid = col >= (width - total)[:, None]  # (b, width) right-aligned slots of the new history
    inserted = valid & (_random_rank(valid, generator) < count[:, None])
    original = valid & ~inserted
    # The k-th original slot of a row takes the row's k-th real item (input column t - n + k).
    order = original.long().cumsum(1) - 1
    source = (t - n)[:, None] + order
    kept = history.gather(1, source.clamp(0, t - 1))
    u = torch.rand((b, width), device=device, generator=generator)
    sampled = torch.searchsorted(popularity_cdf, u * popularity_cdf[-1], right=True) + 1
    sampled = sampled.clamp(max=popularity_cdf.shape[0])
    out = torch.where(inserted, sampled, torch.where(original, kept, torch.zeros_like(kept)))
    return out[:, -max_len:] if width > max_len else out


def _left_pad(history: torch.Tensor, width: int) -> torch.Tensor:
    if history.shape[1] == width:
        return history
    pad = history.new_zeros((history.shape[0], width - history.shape[1]))
    return torch.cat([pad, history], 1)


def augment(
    history: torch.Tensor,
    popularity_cdf: torch.Tensor,
    max_len: int,
    mask_ratio: float = 0.3,
    crop_ratio: float = 0.6,
    reorder_ratio: float = 0.2,
    insert_ratio: float = 0.2,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """One view: each row gets one operator drawn uniformly from the four. Returns ``(b, t')``, t' >= t."""
    views = [
        mask(history, mask_ratio, generator),
        crop(history, crop_ratio, generator),
        reorder(history, reorder_ratio, generator),
        insert(history, insert_ratio, popularity_cdf, max_len, generator),
    ]
    width = max(v.shape[1] for v in views)
    views = torch.stack([_left_pad(v, width) for v in views])  # (4, b, width)
    choice = torch.randint(len(OPERATORS), (history.shape[0],), device=history.device, generator=generator)
    out = views.gather(0, choice[None, :, None].expand(1, -1, width)).squeeze(0)
    single = _lengths(history) <= 1
    return torch.where(single[:, None], _left_pad(history, width), out)


def two_views(history: torch.Tensor, popularity_cdf: torch.Tensor, max_len: int, **ratios) -> torch.Tensor:
    """Two independent views stacked as one batch ``(2b, t')``: rows 0..b-1 view 1, rows b..2b-1 view 2."""
    generator = ratios.pop("generator", None)
    first = augment(history, popularity_cdf, max_len, generator=generator, **ratios)
    second = augment(history, popularity_cdf, max_len, generator=generator, **ratios)
    width = max(first.shape[1], second.shape[1])
    return torch.cat([_left_pad(first, width), _left_pad(second, width)])
