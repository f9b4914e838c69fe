"""A key/value cache: each layer keeps the keys and values of the tokens it has already seen,
so that generating one more token costs one token's worth of work instead of the whole prefix.

Taught in chapter 7, Inference engineering.
"""
from __future__ import annotations

import torch


class LayerKVCache:
    """Keys and values of one attention layer, in buffers preallocated for ``max_len`` positions.

    Buffers are allocated on the first ``append`` (so they take its batch size, device and dtype);
    later appends write in place, which avoids re-copying the whole prefix at every step.
    """

    def __init__(self, max_len: int):
        self.max_len = max_len
        self.length = 0
        self._k = self._v = None

    def append(self, k: torch.Tensor, v: torch.Tensor):
        """k, v: (B, H, T, d_head). Returns all keys and values so far, (B, H, length, d_head).

        Raises ValueError when the cache would grow beyond max_len.
        """
        end = self.length + k.size(2)
        if end > self.max_len:
            raise ValueError(f"KV cache holds at most {self.max_len} positions; {end} requested")
        if self._k is None:
            B, H, _, D = k.shape
            self._k = k.new_empty(B, H, self.max_len, D)
            self._v = v.new_empty(B, H, self.max_len, v.size(-1))
        self._k[:, :, self.length:end] = k
        self._v[:, :, self.length:end] = v
        self.length = end
        return self.keys, self.values

    @property
    def keys(self):
        return self._k[:, :, : self.length]

    @property
    def values(self):
        return self._v[:, :, : self.length]

    def crop(self, length: int) -> None:
        """Forget every position from ``length`` on (speculative decoding drops rejected tokens).

        The buffers stay allocated; the next append overwrites the forgotten positions.
        Raises ValueError unless 0 <= length <= the number of cached positions.
        """
        if not 0 <= length <= self.length:
            raise ValueError(f"can crop the cache to a length in [0, {self.length}], got {length}")
        self.length = length

    def reorder(self, index: torch.Tensor) -> None:
        """Keep batch rows ``index`` (beam search keeps the surviving beams' histories)."""
        if self._k is not None:
            self._k = self._k.index_select(0, index)
            self._v = self._v.index_select(0, index)

    @property
    def nbytes(self) -> int:
        """Bytes held by the keys and values in use (not the unused preallocated tail)."""
        if self._k is None:
            return 0
        return 2 * self.keys.numel() * self._k.element_size()


class KVCache:
    """One LayerKVCache per layer. ``len(cache)`` is the number of cached positions."""

    def __init__(self, n_layers: int, max_len: int):
        self.layers = [LayerKVCache(max_len) for _ in range(n_layers)]

    def __getitem__(self, i: int) -> LayerKVCache:
        return self.layers[i]

    def __len__(self) -> int:
        return self.layers[0].length

    def crop(self, length: int) -> None:
        """Keep the first ``length`` positions in every layer; see LayerKVCache.crop."""
        for layer in self.layers:
            layer.crop(length)

    def reorder(self, index: torch.Tensor) -> None:
        for layer in self.layers:
            layer.reorder(index)

    @property
    def nbytes(self) -> int:
        """Total bytes: 2 (K and V) * layers * batch * heads * tokens * d_head * bytes per value."""
        return sum(layer.nbytes for layer in self.layers)
