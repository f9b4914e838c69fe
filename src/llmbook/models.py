"""Three Transformer models with dataclass configs: GPT (decoder-only), BERT (encoder), Seq2Seq.

Every model returns an output object with ``.logits``, ``.loss`` (when targets or labels are given)
and ``.attentions`` (one (B, H, T, T) tensor per layer with ``return_attention=True``, else None).

Taught in chapters 4, Encoder and decoder, and 5, Pretraining.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import DecoderBlock, EncoderBlock, activation_fn
from .kv_cache import KVCache
from .positional import LearnedPositions, RotaryEmbedding, SinusoidalPositions

POS_ENCODINGS = ("learned", "sinusoidal", "rope")


def _check_config(cfg) -> None:
    """Raise ValueError naming the first setting that cannot build a model."""
    if cfg.d_model % cfg.n_heads:
        raise ValueError(f"d_model={cfg.d_model} must be divisible by n_heads={cfg.n_heads}")
    if cfg.pos_encoding not in POS_ENCODINGS:
        raise ValueError(f"pos_encoding={cfg.pos_encoding!r}; choose one of {POS_ENCODINGS}")
    if not 0.0 <= cfg.dropout < 1.0:
        raise ValueError(f"dropout={cfg.dropout} must lie in [0, 1)")
    activation_fn(cfg.activation)
    for name, value in asdict(cfg).items():
        if isinstance(value, int) and not isinstance(value, bool) and value < 0:
            raise ValueError(f"{name}={value} must not be negative")


def check_token_ids(ids: torch.Tensor, vocab_size: int, name: str = "token ids") -> None:
    """Raise TypeError/ValueError unless ids is an integer (B, T) tensor with values in [0, vocab_size)."""
    if not isinstance(ids, torch.Tensor) or ids.dtype not in (torch.long, torch.int):
        raise TypeError(f"{name} must be an integer torch.Tensor, got {type(ids).__name__} "
                        f"{getattr(ids, 'dtype', '')}")
    if ids.dim() != 2:
        raise ValueError(f"{name} must have shape (B, T), got {tuple(ids.shape)}")
    if ids.numel():
        lo, hi = (int(v) for v in torch.aminmax(ids))  # one reduction, one wait for the device
        if lo < 0 or hi >= vocab_size:
            bad = lo if lo < 0 else hi
            raise ValueError(f"{name} contain {bad}, outside the vocabulary [0, {vocab_size})")


def _check_length(T: int, max_len: int, what: str = "sequence") -> None:
    if T > max_len:
        raise ValueError(f"{what} of length {T} is longer than the context length {max_len}")


def _key_mask(attention_mask, B, T_k):
    """(B, T_k) 1/0 or bool -> bool (B, 1, 1, T_k), True for real tokens; None stays None."""
    if attention_mask is None:
        return None
    if attention_mask.shape != (B, T_k):
        raise ValueError(f"attention_mask must have shape (B, T) = {(B, T_k)}, got {tuple(attention_mask.shape)}")
    return attention_mask.bool()[:, None, None, :]


def _positions_from_mask(attention_mask, T):
    """Position ids that skip padding: with left padding the first real token gets position 0."""
    pos = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
    return pos[:, -T:]


def _position_module(cfg, max_len):
    if cfg.pos_encoding == "learned":
        return LearnedPositions(max_len, cfg.d_model)
    if cfg.pos_encoding == "sinusoidal":
        return SinusoidalPositions(max_len, cfg.d_model)
    return None  # rope: applied inside attention


def _embedding_scale(cfg) -> float:
    """Factor on token embeddings. A fixed sinusoidal table has entries of size ~1; token vectors
    initialised at std 0.02 would drown in it, so (as in Vaswani et al.) they are initialised at
    std 1/sqrt(d_model) and multiplied by sqrt(d_model), entering at the same scale."""
    return math.sqrt(cfg.d_model) if cfg.pos_encoding == "sinusoidal" else 1.0


def _init_token_embedding(emb: nn.Embedding, cfg) -> None:
    if cfg.pos_encoding == "sinusoidal":
        nn.init.normal_(emb.weight, 0.0, cfg.d_model ** -0.5)


def _rotary(cfg, max_len):
    return RotaryEmbedding(cfg.d_model // cfg.n_heads, max_len) if cfg.pos_encoding == "rope" else None


def _init_weights(module: nn.Module, std: float = 0.02) -> None:
    """GPT-2/BERT initialisation: normal(0, 0.02) weights, zero biases, unit LayerNorm."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, 0.0, std)
            if isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, LearnedPositions):
            nn.init.normal_(m.weight, 0.0, std)


def _lm_loss(logits, targets):
    """Mean cross-entropy over positions whose target is not -100."""
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-100)


@dataclass
class ModelOutput:
    logits: torch.Tensor
    loss: torch.Tensor | None = None
    attentions: list | None = None


# ----------------------------------------------------------------------------------------- GPT
@dataclass
class GPTConfig:
    vocab_size: int = 65
    block_size: int = 128  # context length: the most positions the model can see
    n_layers: int = 4
    n_heads: int = 4
    d_model: int = 128
    d_ff: int | None = None  # default 4 * d_model
    dropout: float = 0.0
    bias: bool = True
    norm_first: bool = True  # pre-LN (GPT-2); False gives post-LN
    pos_encoding: str = "learned"
    activation: str = "gelu_tanh"
    layer_norm_eps: float = 1e-5
    tie_weights: bool = True  # the output layer reuses the token embedding matrix

    def __post_init__(self):
        if self.d_ff is None:
            self.d_ff = 4 * self.d_model
        _check_config(self)


class GPT(nn.Module):
    """Decoder-only language model: predicts token t+1 from tokens 0..t."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = c = config
        self.tok_emb = nn.Embedding(c.vocab_size, c.d_model)
        self.pos_emb = _position_module(c, c.block_size)
        rotary = _rotary(c, c.block_size)
        self.drop = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList(
            DecoderBlock(c.d_model, c.n_heads, c.d_ff, c.dropout, c.norm_first, c.activation,
                         c.layer_norm_eps, c.bias, rotary=rotary)
            for _ in range(c.n_layers)
        )
        self.ln_f = nn.LayerNorm(c.d_model, eps=c.layer_norm_eps) if c.norm_first else nn.Identity()
        self.lm_head = nn.Linear(c.d_model, c.vocab_size, bias=False)
        _init_weights(self)
        _init_token_embedding(self.tok_emb, c)
        self.emb_scale = _embedding_scale(c)
        if c.tie_weights:
            self.lm_head.weight = self.tok_emb.weight

    def num_parameters(self, non_embedding: bool = False) -> int:
        n = sum(p.numel() for p in self.parameters())
        if non_embedding:
            n -= self.tok_emb.weight.numel()
            if isinstance(self.pos_emb, LearnedPositions):
                n -= self.pos_emb.weight.numel()
        return n

    def new_kv_cache(self) -> KVCache:
        return KVCache(self.config.n_layers, self.config.block_size)

    def forward(self, idx, targets=None, return_attention=False, kv_cache=None, attention_mask=None):
        """idx: (B, T) token ids; targets: (B, T) next-token ids (-100 = ignore).

        kv_cache: a KVCache holding earlier positions (idx are the new tokens after them).
        attention_mask: (B, past + T), 1 for real tokens, 0 for padding (left padding for batches).
        Returns ModelOutput with logits (B, T, vocab_size).
        """
        c = self.config
        check_token_ids(idx, c.vocab_size)
        B, T = idx.shape
        past = len(kv_cache) if kv_cache is not None else 0
        _check_length(past + T, c.block_size, "prompt plus cached tokens" if past else "input sequence")
        mask = _key_mask(attention_mask, B, past + T)
        if attention_mask is not None:
            positions = _positions_from_mask(attention_mask, T)
        else:
            positions = torch.arange(past, past + T, device=idx.device)
        x = self.tok_emb(idx)
        if self.emb_scale != 1.0:  # only sinusoidal positions scale; skip the no-op on the hot path
            x = x * self.emb_scale
        if self.pos_emb is not None:
            x = x + self.pos_emb(positions)
        x = self.drop(x)
        attentions = [] if return_attention else None
        for i, block in enumerate(self.blocks):
            layer_cache = kv_cache[i] if kv_cache is not None else None
            x, w, _ = block(x, self_mask=mask, need_weights=return_attention, kv_cache=layer_cache,
                            positions=positions)
            if return_attention:
                attentions.append(w)
        logits = self.lm_head(self.ln_f(x))
        loss = _lm_loss(logits, targets) if targets is not None else None
        return ModelOutput(logits, loss, attentions)

    def generate(self, idx, max_new_tokens, temperature=1.0, top_k=None, top_p=None, use_cache=True,
                 generator=None, eos_id=None, attention_mask=None):
        """Continue idx (B, T) by max_new_tokens tokens; see llmbook.generate.generate."""
        from .generate import generate

        return generate(self, idx, max_new_tokens, temperature, top_k, top_p, use_cache, generator, eos_id,
                        attention_mask)


# ---------------------------------------------------------------------------------------- BERT
@dataclass
class BERTConfig:
    vocab_size: int = 1000
    max_len: int = 128
    n_layers: int = 2
    n_heads: int = 4
    d_model: int = 128
    d_ff: int | None = None
    type_vocab_size: int = 2  # segment A / segment B
    dropout: float = 0.0
    bias: bool = True
    norm_first: bool = False  # BERT is post-LN
    pos_encoding: str = "learned"
    activation: str = "gelu"
    layer_norm_eps: float = 1e-12
    num_labels: int = 0  # > 0 adds a sequence-classification head
    pad_id: int | None = 0  # with no attention_mask given, keys equal to pad_id are masked

    def __post_init__(self):
        if self.d_ff is None:
            self.d_ff = 4 * self.d_model
        _check_config(self)


@dataclass
class BERTOutput(ModelOutput):
    nsp_logits: torch.Tensor | None = None  # (B, 2): 0 = IsNext, 1 = NotNext
    class_logits: torch.Tensor | None = None  # (B, num_labels)
    hidden_states: torch.Tensor | None = None  # (B, T, d_model), the encoder's output
    pooled: torch.Tensor | None = None  # (B, d_model), tanh(W h_[CLS] + b)


class BERT(nn.Module):
    """Bidirectional encoder with masked-LM, next-sentence and (optional) classification heads."""

    def __init__(self, config: BERTConfig):
        super().__init__()
        self.config = c = config
        self.tok_emb = nn.Embedding(c.vocab_size, c.d_model)
        self.pos_emb = _position_module(c, c.max_len)
        self.type_emb = nn.Embedding(c.type_vocab_size, c.d_model)
        self.emb_norm = nn.LayerNorm(c.d_model, eps=c.layer_norm_eps)
        self.drop = nn.Dropout(c.dropout)
        rotary = _rotary(c, c.max_len)
        self.blocks = nn.ModuleList(
            EncoderBlock(c.d_model, c.n_heads, c.d_ff, c.dropout, c.norm_first, c.activation,
                         c.layer_norm_eps, c.bias, rotary=rotary)
            for _ in range(c.n_layers)
        )
        self.final_norm = nn.LayerNorm(c.d_model, eps=c.layer_norm_eps) if c.norm_first else nn.Identity()
        # masked-LM head: transform, then a decoder tied to the token embeddings
        self.mlm_dense = nn.Linear(c.d_model, c.d_model)
        self.mlm_act = activation_fn(c.activation)
        self.mlm_norm = nn.LayerNorm(c.d_model, eps=c.layer_norm_eps)
        self.mlm_bias = nn.Parameter(torch.zeros(c.vocab_size))
        self.pooler = nn.Linear(c.d_model, c.d_model)
        self.nsp_head = nn.Linear(c.d_model, 2)
        self.classifier = nn.Linear(c.d_model, c.num_labels) if c.num_labels > 0 else None
        _init_weights(self)
        _init_token_embedding(self.tok_emb, c)
        self.emb_scale = _embedding_scale(c)

    def forward(self, input_ids, token_type_ids=None, attention_mask=None, labels=None,
                next_sentence_label=None, class_labels=None, return_attention=False):
        """input_ids: (B, T); token_type_ids: (B, T) segment ids; attention_mask: (B, T) 1 = real token.

        labels: (B, T) masked-LM targets, -100 where no prediction is asked; next_sentence_label: (B,);
        class_labels: (B,). The loss is the sum of the losses whose labels are given.
        Returns BERTOutput with logits (B, T, vocab_size) from the masked-LM head.
        """
        c = self.config
        check_token_ids(input_ids, c.vocab_size, "input_ids")
        B, T = input_ids.shape
        _check_length(T, c.max_len)
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        check_token_ids(token_type_ids, c.type_vocab_size, "token_type_ids")
        if attention_mask is None and c.pad_id is not None:
            attention_mask = input_ids != c.pad_id
        mask = _key_mask(attention_mask, B, T)
        positions = torch.arange(T, device=input_ids.device)
        x = self.tok_emb(input_ids)
        if self.emb_scale != 1.0:
            x = x * self.emb_scale
        x = x + self.type_emb(token_type_ids)
        if self.pos_emb is not None:
            x = x + self.pos_emb(positions)
        x = self.drop(self.emb_norm(x))
        attentions = [] if return_attention else None
        for block in self.blocks:
            x, w = block(x, mask=mask, need_weights=return_attention, positions=positions)
            if return_attention:
                attentions.append(w)
        h = self.final_norm(x)
        logits = F.linear(self.mlm_norm(self.mlm_act(self.mlm_dense(h))), self.tok_emb.weight, self.mlm_bias)
        pooled = torch.tanh(self.pooler(h[:, 0]))
        nsp_logits = self.nsp_head(pooled)
        class_logits = self.classifier(self.drop(pooled)) if self.classifier is not None else None
        losses = []
        if labels is not None:
            losses.append(_lm_loss(logits, labels))
        if next_sentence_label is not None:
            losses.append(F.cross_entropy(nsp_logits, next_sentence_label))
        if class_labels is not None:
            if class_logits is None:
                raise ValueError("class_labels given but the config has num_labels=0 (no classifier)")
            losses.append(F.cross_entropy(class_logits, class_labels))
        loss = sum(losses) if losses else None
        return BERTOutput(logits, loss, attentions, nsp_logits, class_logits, h, pooled)


# ------------------------------------------------------------------------------------- Seq2Seq
@dataclass
class Seq2SeqConfig:
    src_vocab_size: int = 64
    tgt_vocab_size: int = 64
    max_len: int = 64
    n_encoder_layers: int = 2
    n_decoder_layers: int = 2
    n_heads: int = 4
    d_model: int = 128
    d_ff: int | None = None
    dropout: float = 0.0
    bias: bool = True
    norm_first: bool = True
    pos_encoding: str = "sinusoidal"
    activation: str = "gelu"
    layer_norm_eps: float = 1e-5
    pad_id: int = 0
    bos_id: int = 1
    eos_id: int = 2

    def __post_init__(self):
        if self.d_ff is None:
            self.d_ff = 4 * self.d_model
        _check_config(self)


@dataclass
class Seq2SeqOutput(ModelOutput):
    encoder_attentions: list | None = None  # per encoder layer (B, H, S, S)
    cross_attentions: list | None = None  # per decoder layer (B, H, T, S): target -> source
    # .attentions holds the decoder's masked self-attention, (B, H, T, T) per layer


class Seq2Seq(nn.Module):
    """Encoder-decoder Transformer: the encoder reads the source, the decoder writes the target
    one token at a time, looking at the source through cross-attention."""

    def __init__(self, config: Seq2SeqConfig):
        super().__init__()
        self.config = c = config
        self.src_emb = nn.Embedding(c.src_vocab_size, c.d_model)
        self.tgt_emb = nn.Embedding(c.tgt_vocab_size, c.d_model)
        self.pos_emb = _position_module(c, c.max_len)
        rotary = _rotary(c, c.max_len)
        self.drop = nn.Dropout(c.dropout)
        common = (c.d_model, c.n_heads, c.d_ff, c.dropout, c.norm_first, c.activation, c.layer_norm_eps, c.bias)
        self.encoder = nn.ModuleList(EncoderBlock(*common, rotary=rotary) for _ in range(c.n_encoder_layers))
        self.decoder = nn.ModuleList(
            DecoderBlock(*common, cross_attention=True, rotary=rotary) for _ in range(c.n_decoder_layers))
        norm = (lambda: nn.LayerNorm(c.d_model, eps=c.layer_norm_eps)) if c.norm_first else nn.Identity
        self.enc_norm, self.dec_norm = norm(), norm()
        self.lm_head = nn.Linear(c.d_model, c.tgt_vocab_size, bias=False)
        _init_weights(self, std=c.d_model ** -0.5)  # embeddings are scaled by sqrt(d_model) below

    def _embed(self, emb, ids, offset=0):
        positions = torch.arange(offset, offset + ids.size(1), device=ids.device)
        x = emb(ids) * math.sqrt(self.config.d_model)
        if self.pos_emb is not None:
            x = x + self.pos_emb(positions)
        return self.drop(x), positions

    def encode(self, src, return_attention=False):
        """src: (B, S) -> (memory (B, S, d_model), source mask (B, 1, 1, S), encoder attentions)."""
        c = self.config
        check_token_ids(src, c.src_vocab_size, "source ids")
        _check_length(src.size(1), c.max_len, "source sequence")
        src_mask = src.ne(c.pad_id)[:, None, None, :]
        x, positions = self._embed(self.src_emb, src)
        attentions = [] if return_attention else None
        for block in self.encoder:
            x, w = block(x, mask=src_mask, need_weights=return_attention, positions=positions)
            if return_attention:
                attentions.append(w)
        return self.enc_norm(x), src_mask, attentions

    def decode(self, tgt, memory, src_mask, return_attention=False, kv_cache=None, cross_cache=None):
        """tgt: (B, T) target ids so far (starting with bos) -> (logits (B, T, V), self, cross weights)."""
        c = self.config
        check_token_ids(tgt, c.tgt_vocab_size, "target ids")
        past = len(kv_cache) if kv_cache is not None else 0
        _check_length(past + tgt.size(1), c.max_len, "target sequence")
        x, positions = self._embed(self.tgt_emb, tgt, offset=past)
        self_w, cross_w = ([], []) if return_attention else (None, None)
        for i, block in enumerate(self.decoder):
            x, ws, wc = block(x, memory, memory_mask=src_mask, need_weights=return_attention,
                              kv_cache=kv_cache[i] if kv_cache is not None else None,
                              cross_cache=cross_cache[i] if cross_cache is not None else None,
                              positions=positions)
            if return_attention:
                self_w.append(ws)
                cross_w.append(wc)
        return self.lm_head(self.dec_norm(x)), self_w, cross_w

    def forward(self, src, tgt_in, targets=None, return_attention=False):
        """Teacher forcing: src (B, S), tgt_in (B, T) = bos + target[:-1], targets (B, T) = target.

        All T positions are predicted in one parallel pass; padding targets should be -100 or pad_id
        (pad_id targets are ignored in the loss).
        """
        memory, src_mask, enc_w = self.encode(src, return_attention)
        logits, self_w, cross_w = self.decode(tgt_in, memory, src_mask, return_attention)
        loss = None
        if targets is not None:
            loss = _lm_loss(logits, targets.masked_fill(targets == self.config.pad_id, -100))
        return Seq2SeqOutput(logits, loss, self_w, enc_w, cross_w)

    def new_caches(self):
        """(self-attention cache, cross-attention cache) for step-by-step decoding."""
        n, L = self.config.n_decoder_layers, self.config.max_len
        return KVCache(n, L), KVCache(n, L)

    def greedy_decode(self, src, max_new_tokens=None, use_cache=True):
        """Decode src (B, S) greedily; returns (B, 1 + n) ids starting with bos. Rows that emitted
        eos are padded with pad_id afterwards; decoding stops when every row has emitted eos."""
        from .generate import greedy_seq2seq

        return greedy_seq2seq(self, src, max_new_tokens, use_cache)

    def beam_search(self, src, beam_size=4, max_new_tokens=None, length_penalty=1.0):
        """Beam search for each source row; returns a list of 1-D id tensors (bos ... eos)."""
        from .generate import beam_search_seq2seq

        return [beam_search_seq2seq(self, row[None], beam_size, max_new_tokens, length_penalty) for row in src]


CONFIGS = {"GPT": GPTConfig, "BERT": BERTConfig, "Seq2Seq": Seq2SeqConfig}
MODELS = {"GPT": GPT, "BERT": BERT, "Seq2Seq": Seq2Seq}
