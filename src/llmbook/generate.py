"""Turning a model's next-token distribution into text: greedy, temperature, top-k, top-p, min-p, beam search.

Generation runs in two phases: *prefill* reads the prompt in one parallel pass, *decode* adds one
token per step. With a KV cache each decode step processes only the new token.

Taught in chapters 4, Encoder and decoder, and 7, Inference engineering.
"""
from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.nn.functional as F


@contextmanager
def inference_mode(model):
    """Eval mode (no dropout) and no gradients for the block; restores the mode the model was in."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


@contextmanager
def decoding_mode(*models):
    """Eval mode and torch.inference_mode for a decoding loop whose caches live only inside it.

    torch.inference_mode skips autograd's bookkeeping (version counters, view tracking) that
    no_grad still does: about 10 % of a cached decode step of a small model. Tensors made under it
    cannot be used for training later: clone what leaves the loop (the ids), and use inference_mode
    instead for a cache the caller keeps.
    """
    modes = [m.training for m in models]
    for m in models:
        m.eval()
    try:
        with torch.inference_mode():
            yield
    finally:
        for m, was_training in zip(models, modes):
            m.train(was_training)


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the k largest logits of each row (V,) or (B, V); set the rest to -inf."""
    if k < 1:
        raise ValueError(f"top_k must be >= 1, got {k}")
    k = min(k, logits.size(-1))
    kept, index = logits.topk(k, dim=-1)
    return torch.full_like(logits, float("-inf")).scatter(-1, index, kept)


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Nucleus filter: keep the smallest set of most likely tokens whose probability reaches p."""
    if not 0.0 < p <= 1.0:
        raise ValueError(f"top_p must lie in (0, 1], got {p}")
    sorted_logits, order = logits.sort(dim=-1, descending=True)
    probs = sorted_logits.softmax(dim=-1)
    # drop a token if the tokens ranked above it already reach p (the top token always stays)
    drop_sorted = probs.cumsum(dim=-1) - probs >= p
    drop = drop_sorted.scatter(-1, order, drop_sorted)
    return logits.masked_fill(drop, float("-inf"))


def min_p_filter(logits: torch.Tensor, min_p: float) -> torch.Tensor:
    """Min-p filter (Nguyen et al., 2024): keep the tokens whose probability is at least min_p times
    the most likely token's; set the rest to -inf.

    Unlike top-p's fixed mass, the cut-off follows the model's confidence: strict when one token
    dominates, loose when many are plausible. min_p=0 keeps every token, min_p=1 only the top ones.
    """
    if not 0.0 <= min_p <= 1.0:
        raise ValueError(f"min_p must lie in [0, 1], got {min_p}")
    probs = logits.float().softmax(dim=-1)
    return logits.masked_fill(probs < min_p * probs.amax(dim=-1, keepdim=True), float("-inf"))


def next_token_probs(logits, temperature=1.0, top_k=None, top_p=None, min_p=None):
    """The distribution sampling draws from: softmax(logits / temperature) (float32) after the
    optional filters, applied in the order top-k, top-p, min-p. temperature must be > 0."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0 to define a distribution, got {temperature}")
    logits = logits / temperature
    if top_k is not None:
        logits = top_k_filter(logits, top_k)
    if top_p is not None:
        logits = top_p_filter(logits, top_p)
    if min_p is not None:
        logits = min_p_filter(logits, min_p)
    return logits.float().softmax(dim=-1)


def sample_next_token(logits, temperature=1.0, top_k=None, top_p=None, generator=None, min_p=None):
    """Pick the next token from logits (B, V) -> (B, 1).

    temperature 0 is greedy (argmax); otherwise sample from next_token_probs: softmax(logits /
    temperature) after the optional top-k, top-p and min-p filters. top_k=1 therefore also gives
    the greedy choice.
    """
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if temperature == 0:
        return logits.argmax(dim=-1, keepdim=True)
    probs = next_token_probs(logits, temperature, top_k, top_p, min_p)
    return torch.multinomial(probs, 1, generator=generator)


def generate(model, input_ids, max_new_tokens, temperature=1.0, top_k=None, top_p=None, use_cache=True,
             generator=None, eos_id=None, attention_mask=None, min_p=None, kv_cache=None):
    """Append max_new_tokens tokens to input_ids (B, T) with a GPT; returns (B, T + n) ids.

    With use_cache the prompt plus new tokens must fit in the context (a cache cannot slide learned
    positions); without it, the model sees the last context_length tokens (a sliding window). Once every
    row has produced eos_id (if given), generation stops early. For a batch of prompts of different
    lengths, left-pad them and pass attention_mask (B, T): 1 for real tokens, 0 for padding.
    Sampling settings: see sample_next_token. kv_cache: an empty cache to fill instead of
    model.new_kv_cache() (a kv_cache.PagedKVCache, say); it is left holding the sequence.
    """
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    context = model.config.context_length
    if kv_cache is not None and (not use_cache or len(kv_cache) > 0):
        raise ValueError(f"kv_cache must be an empty cache and use_cache=True; got use_cache={use_cache} and a "
                         f"cache holding {len(kv_cache)} positions")
    if use_cache and input_ids.size(1) + max_new_tokens > context:
        raise ValueError(
            f"prompt ({input_ids.size(1)}) + max_new_tokens ({max_new_tokens}) exceeds the context length "
            f"{context}; use use_cache=False to generate beyond it with a sliding window")
    cache = (model.new_kv_cache() if kv_cache is None else kv_cache) if use_cache else None
    pick = lambda logits: sample_next_token(logits, temperature, top_k, top_p, generator, min_p)  # noqa: E731
    if kv_cache is not None:  # the caller's cache must stay usable outside inference mode
        with inference_mode(model):
            return _generate_loop(model, input_ids, max_new_tokens, context, cache, eos_id, attention_mask, pick)
    with decoding_mode(model):
        ids = _generate_loop(model, input_ids, max_new_tokens, context, cache, eos_id, attention_mask, pick)
    return ids.clone()  # an ordinary tensor again, which training can use


def _generate_loop(model, input_ids, max_new_tokens, context, cache, eos_id, attention_mask, pick):
    use_cache = cache is not None
    tokens = [input_ids]
    step_input = input_ids
    mask = attention_mask
    done = torch.zeros(input_ids.size(0), dtype=torch.bool, device=input_ids.device)
    for step in range(max_new_tokens):
        if not use_cache:
            step_input = torch.cat(tokens, dim=1)[:, -context:]
        if mask is not None:
            if step > 0:  # each new token is a real token
                mask = torch.cat([mask, mask.new_ones(mask.size(0), 1)], dim=1)
            step_mask = mask if use_cache else mask[:, -context:]
        logits = model(step_input, kv_cache=cache, attention_mask=None if mask is None else step_mask).logits[:, -1]
        nxt = pick(logits)
        if eos_id is not None:
            nxt = nxt.masked_fill(done[:, None], eos_id)
            done |= nxt[:, 0] == eos_id
        tokens.append(nxt)
        step_input = nxt
        if eos_id is not None and bool(done.all()):
            break
    return torch.cat(tokens, dim=1)


def beam_search(step_log_probs, start, beam_size, max_new_tokens, eos_id, length_penalty=1.0):
    """Generic beam search for one sequence.

    step_log_probs(seqs (N, t)) -> (N, V) log-probabilities of the next token for each beam.
    start: (t0,) ids to start from. A finished hypothesis is scored by sum log p / length**length_penalty.
    Returns the best hypothesis as a 1-D tensor (start + new tokens, ending with eos if one was reached).
    """
    if beam_size < 1:
        raise ValueError(f"beam_size must be >= 1, got {beam_size}")
    beams = start[None]  # (1, t0)
    scores = torch.zeros(1, device=start.device)
    finished = []  # (normalised score, sequence)
    for _ in range(max_new_tokens):
        logp = step_log_probs(beams)  # (N, V)
        V = logp.size(-1)
        total = (scores[:, None] + logp).view(-1)
        top_scores, top_index = total.topk(min(2 * beam_size, total.numel()))
        new_beams, new_scores = [], []
        for s, i in zip(top_scores.tolist(), top_index.tolist()):
            seq = torch.cat([beams[i // V], beams.new_tensor([i % V])])
            if i % V == eos_id:
                finished.append((s / (seq.numel() - start.numel()) ** length_penalty, seq))
            else:
                new_beams.append(seq)
                new_scores.append(s)
            if len(new_beams) == beam_size:
                break
        if len(finished) >= beam_size or not new_beams:
            break
        beams, scores = torch.stack(new_beams), torch.tensor(new_scores, device=start.device)
    if not finished:  # no beam reached eos within max_new_tokens: return the best unfinished one
        finished = [(scores[0].item() / max(1, beams.size(1) - start.numel()) ** length_penalty, beams[0])]
    return max(finished, key=lambda f: f[0])[1]


def greedy_seq2seq(model, input_ids, max_new_tokens=None, use_cache=True):
    """Greedy decoding of source input_ids (B, S) with a Seq2Seq model; returns (B, 1 + n) ids
    starting with bos."""
    c = model.config
    max_new = c.context_length - 1 if max_new_tokens is None else max_new_tokens
    with inference_mode(model):
        memory, src_mask, _ = model.encode(input_ids)
        ys = torch.full((input_ids.size(0), 1), c.bos_id, dtype=torch.long, device=input_ids.device)
        cache, cross = model.new_kv_cache() if use_cache else (None, None)
        done = torch.zeros(input_ids.size(0), dtype=torch.bool, device=input_ids.device)
        for _ in range(max_new):
            inp = ys[:, -1:] if use_cache else ys
            logits, _, _ = model.decode(inp, memory, src_mask, kv_cache=cache, cross_cache=cross)
            nxt = logits[:, -1].argmax(dim=-1).masked_fill(done, c.pad_id)
            ys = torch.cat([ys, nxt[:, None]], dim=1)
            done |= nxt == c.eos_id
            if bool(done.all()):
                break
        return ys


def beam_search_seq2seq(model, input_ids, beam_size=4, max_new_tokens=None, length_penalty=1.0):
    """Beam search for one source sequence input_ids (1, S); returns a 1-D tensor bos ... eos."""
    c = model.config
    max_new = c.context_length - 1 if max_new_tokens is None else max_new_tokens
    with inference_mode(model):
        memory, src_mask, _ = model.encode(input_ids)

        def step(seqs):
            n = seqs.size(0)
            logits, _, _ = model.decode(seqs, memory.expand(n, -1, -1), src_mask.expand(n, -1, -1, -1))
            return F.log_softmax(logits[:, -1].float(), dim=-1)

        start = torch.tensor([c.bos_id], device=input_ids.device)
        return beam_search(step, start, beam_size, max_new, c.eos_id, length_penalty)


def beam_search_gpt(model, prompt, beam_size=4, max_new_tokens=20, eos_id=None, length_penalty=1.0):
    """Beam search continuation of prompt (T,) with a GPT; without eos_id, runs max_new_tokens."""
    context = model.config.context_length

    def step(seqs):
        return F.log_softmax(model(seqs[:, -context:]).logits[:, -1].float(), dim=-1)

    with inference_mode(model):
        return beam_search(step, prompt, beam_size, max_new_tokens, -1 if eos_id is None else eos_id,
                           length_penalty)
