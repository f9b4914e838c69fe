"""The paged KV cache: the allocator hands out, frees and reuses blocks; a sequence's positions live
where its block table says; and generation through it gives the contiguous cache's tokens."""
import pytest
import torch

from llmbook.kv_cache import BlockAllocator, KVBlockPool, PagedKVCache
from llmbook.models import GPT, GPTConfig


def small_gpt(**kw):
    torch.manual_seed(0)
    cfg = dict(vocab_size=50, context_length=40, n_layers=2, n_heads=4, d_model=32)
    return GPT(GPTConfig(**{**cfg, **kw})).eval()


def test_allocator_hands_out_every_block_once_then_refuses_and_reuses_freed_ones():
    alloc = BlockAllocator(3)
    got = [alloc.allocate() for _ in range(3)]
    assert sorted(got) == [0, 1, 2] and alloc.num_free == 0
    with pytest.raises(RuntimeError, match="all 3 blocks are in use"):
        alloc.allocate()
    alloc.free(got[1])
    assert alloc.allocate() == got[1]  # the freed block serves the next request
    with pytest.raises(ValueError, match="block 7 is not in use"):
        alloc.free(7)
    alloc.free(got[0])
    with pytest.raises(ValueError, match=f"block {got[0]} is not in use"):
        alloc.free(got[0])  # a double free would hand one block to two sequences


def test_positions_live_at_the_block_and_offset_of_the_block_table():
    pool = KVBlockPool(n_layers=1, num_blocks=8, block_size=4)
    taken = [pool.allocator.allocate() for _ in range(5)]
    for b in (taken[3], taken[0], taken[4]):  # free out of order: the next sequence gets scattered blocks
        pool.allocator.free(b)
    cache = PagedKVCache(pool)
    k = torch.arange(2 * 1 * 10 * 2, dtype=torch.float32).view(2, 1, 10, 2)  # (B, H, T, d): distinct values
    keys, values = cache[0].append(k, -k)
    assert [len(t) for t in cache.block_tables] == [3, 3]  # ceil(10 / 4) blocks per sequence
    assert len({b for t in cache.block_tables for b in t}) == 6  # no block shared
    for s in range(2):
        for t in range(10):
            block, offset = cache.block_tables[s][t // 4], t % 4
            assert torch.equal(pool.keys[0][block, :, offset], k[s, :, t])  # written where the table says
            assert torch.equal(pool.values[0][block, :, offset], -k[s, :, t])
    assert torch.equal(keys, k) and torch.equal(values, -k)  # and read back in order


def test_crop_and_release_give_blocks_back():
    pool = KVBlockPool(n_layers=2, num_blocks=10, block_size=4)
    cache = PagedKVCache(pool)
    for layer in cache.layers:
        layer.append(torch.randn(1, 2, 11, 8), torch.randn(1, 2, 11, 8))
    assert len(cache) == 11 and pool.allocator.num_free == 7
    assert cache.nbytes == 3 * 2 * 2 * (2 * 4 * 8) * 4  # blocks, layers, K and V, (heads, block, d_head), fp32
    cache.crop(5)  # positions 0..4: two blocks
    assert len(cache) == 5 and pool.allocator.num_free == 8 and cache[1].keys.shape == (1, 2, 5, 8)
    cache.release()
    assert len(cache) == 0 and pool.allocator.num_free == 10 and cache.nbytes == 0


@pytest.mark.parametrize("kw", [dict(), dict(pos_encoding="rope", norm="rmsnorm", gated_ffn=True, activation="silu",
                                             n_kv_heads=2)], ids=["gpt2-like", "llama-like-gqa"])
@pytest.mark.parametrize("block_size", [1, 3, 16])
def test_generation_through_the_paged_cache_gives_the_contiguous_caches_tokens(kw, block_size):
    model = small_gpt(**kw)
    prompt = torch.randint(0, 50, (3, 7), generator=torch.Generator().manual_seed(1))
    want = model.generate(prompt, 25, temperature=0)
    pool = KVBlockPool(model.config.n_layers, num_blocks=3 * (-(-32 // block_size)) + 2, block_size=block_size)
    cache = PagedKVCache(pool)
    assert torch.equal(model.generate(prompt, 25, temperature=0, kv_cache=cache), want)
    assert len(cache) == 31  # the last token is returned, never fed back
    d_head_bytes = 2 * model.config.n_layers * (kw.get("n_kv_heads") or 4) * 8 * 4
    assert cache.nbytes == 3 * (-(-31 // block_size)) * block_size * d_head_bytes  # whole blocks per sequence
    cache.release()
    again = PagedKVCache(pool)  # a second request reuses the blocks the first gave back
    assert torch.equal(model.generate(prompt, 25, temperature=0, kv_cache=again), want)


def test_paged_logits_equal_contiguous_logits_step_by_step():
    model = small_gpt(n_kv_heads=1, pos_encoding="rope")
    x = torch.randint(0, 50, (2, 20), generator=torch.Generator().manual_seed(2))
    caches = [model.new_kv_cache(), PagedKVCache(KVBlockPool(2, num_blocks=12, block_size=4))]
    with torch.no_grad():
        outs = [[model(x[:, :6], kv_cache=c).logits] + [model(x[:, t:t + 1], kv_cache=c).logits for t in range(6, 20)]
                for c in caches]
    torch.testing.assert_close(torch.cat(outs[1], 1), torch.cat(outs[0], 1), atol=1e-6, rtol=0)


def test_a_full_pool_and_a_misused_cache_are_refused_clearly():
    model = small_gpt()
    small_pool = KVBlockPool(model.config.n_layers, num_blocks=4, block_size=4)
    with pytest.raises(RuntimeError, match="all 4 blocks are in use"):
        model.generate(torch.zeros(1, 10, dtype=torch.long), 10, temperature=0, kv_cache=PagedKVCache(small_pool))
    used = PagedKVCache(KVBlockPool(model.config.n_layers, num_blocks=20, block_size=4))
    model.generate(torch.zeros(1, 3, dtype=torch.long), 2, temperature=0, kv_cache=used)
    with pytest.raises(ValueError, match="kv_cache must be an empty cache.*holding 4 positions"):
        model.generate(torch.zeros(1, 3, dtype=torch.long), 2, kv_cache=used)
    with pytest.raises(ValueError, match="holds 1 sequences, got a batch of 2"):
        used[0].append(torch.zeros(2, 4, 1, 8), torch.zeros(2, 4, 1, 8))
    with pytest.raises(ValueError, match="block_size >= 1"):
        KVBlockPool(2, num_blocks=4, block_size=0)
