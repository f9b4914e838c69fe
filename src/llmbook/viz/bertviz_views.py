"""Adapters that hand our attention tensors to bertviz's head view and model view (chapters 3 to 5).

bertviz is an optional dependency (``pip install llmbook[viz]``), imported only when a view is drawn.
Its HTML is made self-contained (`bertviz_html`), so a view draws offline and with no require.js.

Used in chapters 3, Attention, step by step; 4, Encoder and decoder; and 5, Pretraining.
"""
from __future__ import annotations

import torch

from .bertviz_html import self_contained


def _layers_for_bertviz(attentions, batch_index: int, decimals, what: str) -> list[torch.Tensor]:
    """Our per-layer (B, H, T_q, T_k) tensors -> bertviz's per-layer (1, H, T_q, T_k), one batch row.

    Values are rounded to `decimals` in float64: the browser needs no more, and it keeps the HTML
    saved in the notebook small. Raises ValueError for an empty list, a tensor that is not 4-D,
    or a batch_index outside [0, B).
    """
    if attentions is None or len(attentions) == 0:
        raise ValueError(f"{what} is empty: run the model with return_attention=True")
    layers = []
    for i, a in enumerate(attentions):
        if a.dim() != 4:
            raise ValueError(f"{what}[{i}] has shape {tuple(a.shape)}; expected (B, H, T_q, T_k)")
        if not -a.size(0) <= batch_index < a.size(0):
            raise ValueError(f"batch_index={batch_index} is outside the batch of size {a.size(0)}")
        a = a[batch_index].unsqueeze(0).detach().cpu().double()  # (1, H, T_q, T_k)
        layers.append(a.round(decimals=decimals) if decimals is not None else a)
    return layers


def _bertviz_arguments(attentions, tokens, encoder_attention, decoder_attention, cross_attention,
                       encoder_tokens, decoder_tokens, batch_index, decimals) -> dict:
    """Sort what the caller gave into bertviz's self-attention or encoder-decoder arguments."""
    if hasattr(attentions, "cross_attentions"):  # a Seq2SeqOutput: show all three kinds
        out, attentions = attentions, None
        encoder_attention, decoder_attention = out.encoder_attentions, out.attentions
        cross_attention = out.cross_attentions
    elif hasattr(attentions, "attentions"):  # a GPT or BERT output
        attentions = attentions.attentions
    if attentions is not None:
        if tokens is None:
            raise ValueError("tokens are needed: one string per position of the attention maps")
        return {"attention": _layers_for_bertviz(attentions, batch_index, decimals, "attentions"),
                "tokens": list(tokens)}
    kwargs = {"encoder_tokens": None if encoder_tokens is None else list(encoder_tokens),
              "decoder_tokens": None if decoder_tokens is None else list(decoder_tokens)}
    for key, value in (("encoder_attention", encoder_attention), ("decoder_attention", decoder_attention),
                       ("cross_attention", cross_attention)):
        if value is not None:
            kwargs[key] = _layers_for_bertviz(value, batch_index, decimals, key)
    if len(kwargs) == 2:
        raise ValueError("give attentions (a list of (B, H, T, T) tensors or a model output), "
                         "or encoder_attention / decoder_attention / cross_attention")
    return kwargs


def _show(html: str, html_action: str):
    """Display the view (html_action="view") or return it as an IPython HTML object ("return")."""
    from IPython.display import HTML, display

    if html_action == "view":
        display(HTML(html))
        return None
    return HTML(html)


def _check_html_action(html_action) -> None:
    if html_action not in ("view", "return"):
        raise ValueError(f"html_action={html_action!r}; expected 'view' (display the view) or 'return'")


def head_view(attentions=None, tokens=None, *, encoder_attention=None, decoder_attention=None,
              cross_attention=None, encoder_tokens=None, decoder_tokens=None, batch_index=0,
              decimals=4, html_action="view", **kwargs):
    """bertviz's head view of our attention maps: lines from each token to the tokens it attends to.

    attentions: a list of (B, H, T, T) tensors, one per layer, or a model output (GPT, BERT, or
    Seq2Seq, whose encoder, decoder and cross attentions are all shown); tokens: T strings.
    For encoder-decoder lists give encoder_/decoder_/cross_attention with encoder_/decoder_tokens.
    batch_index picks the batch row. html_action="return" gives the IPython HTML object instead of
    displaying it. Other keyword arguments go to bertviz.head_view (layer, heads, include_layers).
    Raises ValueError for missing or malformed attention maps (bertviz: for a token count mismatch).
    The view's HTML carries its own scripts (see `bertviz_html`): it loads nothing from the network.
    """
    import bertviz

    _check_html_action(html_action)
    arguments = _bertviz_arguments(attentions, tokens, encoder_attention, decoder_attention, cross_attention,
                                   encoder_tokens, decoder_tokens, batch_index, decimals)
    html = bertviz.head_view(**arguments, **kwargs, html_action="return").data
    return _show(self_contained(html), html_action)


def model_view(attentions=None, tokens=None, *, encoder_attention=None, decoder_attention=None,
               cross_attention=None, encoder_tokens=None, decoder_tokens=None, batch_index=0,
               decimals=4, html_action="view", **kwargs):
    """bertviz's model view: a grid of every layer (rows) and head (columns) of our attention maps.

    Takes the same arguments as head_view; other keyword arguments go to bertviz.model_view
    (display_mode="light", include_layers, include_heads).
    """
    import bertviz

    _check_html_action(html_action)
    arguments = _bertviz_arguments(attentions, tokens, encoder_attention, decoder_attention, cross_attention,
                                   encoder_tokens, decoder_tokens, batch_index, decimals)
    html = bertviz.model_view(**arguments, **kwargs, html_action="return").data
    return _show(self_contained(html), html_action)
