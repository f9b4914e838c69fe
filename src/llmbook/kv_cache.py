"""A key/value cache: each layer keeps the keys and values of the tokens it has already seen,
so that generating one more token costs one token's worth of work instead of the whole prefix.

KVCache keeps each sequence's keys in one preallocated buffer (in the model's dtype, or as int8
with one scale per head and position: Int8LayerKVCache); PagedKVCache keeps them in fixed-size
blocks of a pool shared by many sequences (PagedAttention, as in vLLM).

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
            self._allocate(k, v)
        self._write(self.length, end, k, v)
        self.length = end
        return self.keys, self.values

    def _allocate(self, k: torch.Tensor, v: torch.Tensor) -> None:
        """Buffers for max_len positions, with the batch size, heads, widths, dtype and device of k and v."""
        B, H, _, D = k.shape
        self._k = k.new_empty(B, H, self.max_len, D)
        self._v = v.new_empty(B, H, self.max_len, v.size(-1))

    def _write(self, start: int, end: int, k: torch.Tensor, v: torch.Tensor) -> None:
        # narrow + copy_ is buf[:, :, start:end] = k without parsing an index tuple (once per layer and step)
        self._k.narrow(2, start, end - start).copy_(k)
        self._v.narrow(2, start, end - start).copy_(v)

    @property
    def keys(self):
        return self._k.narrow(2, 0, self.length)

    @property
    def values(self):
        return self._v.narrow(2, 0, self.length)

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


def quantize_vectors(x: torch.Tensor):
    """Symmetric int8 quantisation of each vector along the last dimension.

    x (..., d) -> (q int8 (..., d), scale float32 (..., 1)) with q = round(x / scale) and
    scale = max|x| / 127 (1 for a vector of zeros), so |q * scale - x| <= scale / 2 everywhere.
    """
    amax = x.detach().abs().amax(dim=-1, keepdim=True).float()
    scale = torch.where(amax > 0, amax / 127, torch.ones_like(amax))
    return torch.round(x.float() / scale).clamp(-127, 127).to(torch.int8), scale


class Int8LayerKVCache(LayerKVCache):
    """A LayerKVCache that stores keys and values as int8, with one float32 scale per head and position.

    Each cached key (and value) vector of d_head numbers costs d_head + 4 bytes instead of 2 * d_head
    (bf16) or 4 * d_head (fp32). keys and values come back dequantised, in the dtype that was
    appended; attention then runs in that dtype, so only the cache's storage is int8.
    """

    def _allocate(self, k: torch.Tensor, v: torch.Tensor) -> None:
        B, H, _, D = k.shape
        self._dtype = k.dtype
        self._k = k.new_empty(B, H, self.max_len, D, dtype=torch.int8)
        self._v = v.new_empty(B, H, self.max_len, v.size(-1), dtype=torch.int8)
        self._k_scale = k.new_empty(B, H, self.max_len, 1, dtype=torch.float32)
        self._v_scale = v.new_empty(B, H, self.max_len, 1, dtype=torch.float32)

    def _write(self, start: int, end: int, k: torch.Tensor, v: torch.Tensor) -> None:
        self._k[:, :, start:end], self._k_scale[:, :, start:end] = quantize_vectors(k)
        self._v[:, :, start:end], self._v_scale[:, :, start:end] = quantize_vectors(v)

    @property
    def keys(self):
        n = self.length
        return (self._k[:, :, :n].float() * self._k_scale[:, :, :n]).to(self._dtype)

    @property
    def values(self):
        n = self.length
        return (self._v[:, :, :n].float() * self._v_scale[:, :, :n]).to(self._dtype)

    def reorder(self, index: torch.Tensor) -> None:
        super().reorder(index)
        if self._k is not None:
            self._k_scale = self._k_scale.index_select(0, index)
            self._v_scale = self._v_scale.index_select(0, index)

    @property
    def nbytes(self) -> int:
        """Bytes of the int8 keys and values in use plus their float32 scales."""
        if self._k is None:
            return 0
        n = self.length
        return 2 * (self._k[:, :, :n].numel() + 4 * self._k_scale[:, :, :n].numel())


class KVCache:
    """One LayerKVCache per layer. ``len(cache)`` is the number of cached positions.

    int8=True stores keys and values as int8 with a scale per head and position (Int8LayerKVCache).
    """

    def __init__(self, n_layers: int, max_len: int, int8: bool = False):
        layer = Int8LayerKVCache if int8 else LayerKVCache
        self.layers = [layer(max_len) for _ in range(n_layers)]

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


# ----------------------------------------------------------------------------------- paged cache
class BlockAllocator:
    """Hands out the numbers of free blocks of a KV pool and takes them back (a free list)."""

    def __init__(self, num_blocks: int):
        if num_blocks < 1:
            raise ValueError(f"num_blocks must be >= 1, got {num_blocks}")
        self.num_blocks = num_blocks
        self._free = list(range(num_blocks - 1, -1, -1))  # a stack: block 0 is handed out first

    @property
    def num_free(self) -> int:
        return len(self._free)

    def allocate(self) -> int:
        """The number of a free block; RuntimeError when every block is in use."""
        if not self._free:
            raise RuntimeError(f"the KV pool is full: all {self.num_blocks} blocks are in use "
                               f"(release finished sequences or make the pool larger)")
        return self._free.pop()

    def free(self, block: int) -> None:
        """Take block back; ValueError for a block that is not in use (a double free)."""
        if not 0 <= block < self.num_blocks or block in self._free:
            raise ValueError(f"block {block} is not in use (the pool has blocks 0..{self.num_blocks - 1})")
        self._free.append(block)


class KVBlockPool:
    """Keys and values for many sequences: per layer, num_blocks blocks of block_size positions
    (each (H_kv, block_size, d_head)), and the allocator that hands the blocks out. A block number
    means the same block in every layer. The tensors are allocated at the first write, with its
    heads, width, dtype and device."""

    def __init__(self, n_layers: int, num_blocks: int, block_size: int = 16):
        if n_layers < 1 or block_size < 1:
            raise ValueError(f"need n_layers >= 1 and block_size >= 1, got {n_layers} and {block_size}")
        self.block_size = block_size
        self.allocator = BlockAllocator(num_blocks)
        self.keys, self.values = [None] * n_layers, [None] * n_layers

    @property
    def n_layers(self) -> int:
        return len(self.keys)

    def storage(self, layer: int, k: torch.Tensor, v: torch.Tensor):
        """(key blocks, value blocks) of one layer, (num_blocks, H_kv, block_size, d), made like k and v."""
        if self.keys[layer] is None:
            n, H = self.allocator.num_blocks, k.size(1)
            self.keys[layer] = k.new_zeros(n, H, self.block_size, k.size(-1))
            self.values[layer] = v.new_zeros(n, H, self.block_size, v.size(-1))
        return self.keys[layer], self.values[layer]


class PagedKVCache:
    """A KV cache in fixed-size blocks of a shared KVBlockPool, found through one block table per
    sequence: PagedAttention (Kwon et al., 2023), the memory manager of vLLM.

    A contiguous KVCache reserves max_len positions per sequence up front. Here a sequence takes a
    block only when it reaches it and gives all back with release(), so memory follows the tokens
    held (at most block_size - 1 positions wasted per sequence), and blocks freed by one request
    serve the next. Position t of sequence s lives in pool block block_tables[s][t // block_size] at
    offset t % block_size; the blocks of a sequence need not be adjacent or in order. Same interface
    as KVCache (len, [layer], crop, nbytes), so GPT.forward and generate take either; the keys a
    layer returns are gathered from the blocks (a real kernel reads the blocks in place).
    """

    def __init__(self, pool: KVBlockPool):
        self.pool = pool
        self.block_tables: list[list[int]] = []  # one list of block numbers per sequence (batch row)
        self.layers = [_PagedLayerKVCache(self, i) for i in range(pool.n_layers)]

    def __getitem__(self, i: int):
        return self.layers[i]

    def __len__(self) -> int:
        return self.layers[0].length

    def reserve(self, batch_size: int, length: int) -> None:
        """Give every sequence enough blocks for `length` positions (the allocator may run out)."""
        if not self.block_tables:
            self.block_tables = [[] for _ in range(batch_size)]
        if batch_size != len(self.block_tables):
            raise ValueError(f"this cache holds {len(self.block_tables)} sequences, got a batch of {batch_size}")
        for table in self.block_tables:
            while len(table) * self.pool.block_size < length:
                table.append(self.pool.allocator.allocate())

    def slots(self, start: int, end: int, device=None):
        """(blocks (B, end - start), offsets (end - start,)): where positions start..end-1 live."""
        position = torch.arange(start, end, device=device)
        tables = torch.tensor(self.block_tables, device=device)  # (B, blocks per sequence)
        return tables[:, position // self.pool.block_size], position % self.pool.block_size

    def crop(self, length: int) -> None:
        """Keep the first `length` positions and free the blocks no longer needed."""
        for layer in self.layers:
            layer.crop(length)
        keep = -(-length // self.pool.block_size)  # blocks that still hold a kept position
        for table in self.block_tables:
            while len(table) > keep:
                self.pool.allocator.free(table.pop())

    def release(self) -> None:
        """Give every block back to the pool (the request is finished); the cache is empty again."""
        self.crop(0)
        self.block_tables = []

    @property
    def nbytes(self) -> int:
        """Bytes of the blocks this cache holds, the unused end of each last block included."""
        held = sum(len(table) for table in self.block_tables)
        per_block = sum(k[0].nbytes + v[0].nbytes for k, v in zip(self.pool.keys, self.pool.values) if k is not None)
        return held * per_block


class _PagedLayerKVCache:
    """One layer's view of a PagedKVCache, with LayerKVCache's interface (length, append, keys, values)."""

    def __init__(self, cache: PagedKVCache, index: int):
        self.cache, self.index, self.length = cache, index, 0

    def append(self, k: torch.Tensor, v: torch.Tensor):
        """k, v: (B, H_kv, T, d_head) written into the sequences' blocks; returns all keys and values so far."""
        end = self.length + k.size(2)
        self.cache.reserve(k.size(0), end)
        k_pool, v_pool = self.cache.pool.storage(self.index, k, v)
        blocks, offsets = self.cache.slots(self.length, end, k.device)
        k_pool[blocks, :, offsets] = k.transpose(1, 2)  # (B, T, H, d) into the T slots of each sequence
        v_pool[blocks, :, offsets] = v.transpose(1, 2)
        self.length = end
        return self.keys, self.values

    def _gather(self, pool):
        blocks, offsets = self.cache.slots(0, self.length, pool.device)
        return pool[blocks, :, offsets].transpose(1, 2)  # (B, length, H, d) -> (B, H, length, d)

    @property
    def keys(self):
        return self._gather(self.cache.pool.keys[self.index])

    @property
    def values(self):
        return self._gather(self.cache.pool.values[self.index])

    def crop(self, length: int) -> None:
        if not 0 <= length <= self.length:
            raise ValueError(f"can crop the cache to a length in [0, {self.length}], got {length}")
        self.length = length
