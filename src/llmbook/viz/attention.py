"""Attention pictures: a heatmap of one head, the maps of every layer, and an explorer widget
(chapters 2 to 6 and 9).

Used in chapters 2, Core concepts; 3, Attention, step by step; 4, Encoder and decoder; 5,
Pretraining; 6, Applications; and 9, Emergent abilities.
"""
from __future__ import annotations

import html

import torch

from ..generate import inference_mode
from .images import figure_png, png_img_tag
from .labels import token_labels, token_strings


def _as_matrix(weights) -> torch.Tensor:
    """weights (T_q, T_k) as a float CPU tensor; raises ValueError for any other number of dims."""
    w = torch.as_tensor(weights).detach().cpu().float()
    if w.dim() != 2:
        raise ValueError(
            f"plot_attention takes one attention matrix of shape (T_q, T_k), got shape {tuple(w.shape)}; "
            f"pick a layer, a batch element and a head first, e.g. attentions[layer][0, head]"
        )
    return w


def plot_attention(weights, query_tokens, key_tokens=None, ax=None, title=None, vmax=None,
                   annotate=False, cmap="viridis"):
    """Heatmap of one attention matrix: row i shows how query i spreads its attention over the keys.

    weights: (T_q, T_k) tensor or array, rows summing to 1; query_tokens: T_q labels; key_tokens:
    T_k labels (default: query_tokens, as in self-attention). vmax: top of the colour scale
    (default the largest weight; pass 1.0 to compare several heads on one scale). annotate: write
    each weight in its cell (readable up to about 12 tokens). Returns the matplotlib Axes.
    Raises ValueError if weights is not 2-D or a token list does not match its side.
    """
    import matplotlib.pyplot as plt

    w = _as_matrix(weights)
    T_q, T_k = w.shape
    rows = token_labels(query_tokens, T_q, "query_tokens", "rows (T_q)")
    cols = token_labels(query_tokens if key_tokens is None else key_tokens, T_k,
                         "key_tokens" if key_tokens is not None else "query_tokens (used as keys)",
                         "columns (T_k)")
    if ax is None:
        side = min(9.0, 2.0 + 0.28 * max(T_q, T_k))  # grow with the sequence, within a page's width
        _, ax = plt.subplots(figsize=(side + 1.0, side))
    _draw_heatmap(ax, w, rows, cols, vmax, annotate, cmap)
    if title is not None:
        ax.set_title(title)
    return ax


def _draw_heatmap(ax, w, rows, cols, vmax, annotate, cmap):
    """Draw w (T_q, T_k) on ax with token tick labels, axis labels and a colour bar."""
    # viridis gets steadily lighter from 0 to 1, so the picture still reads in greyscale print.
    top = float(w.max()) if vmax is None else float(vmax)
    image = ax.imshow(w.numpy(), cmap=cmap, vmin=0.0, vmax=max(top, 1e-12), aspect="auto")
    ax.set_xticks(range(len(cols)), cols, rotation=90)
    ax.set_yticks(range(len(rows)), rows)
    ax.set_xlabel("key (attended to)")
    ax.set_ylabel("query (attending)")
    ax.figure.colorbar(image, ax=ax, label="attention weight")
    if annotate:
        for i, row in enumerate(w.tolist()):
            for j, value in enumerate(row):
                # dark text on the light end of the colour map, light text on the dark end
                colour = "black" if value > 0.6 * top else "white"
                ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=8, color=colour)


def attention_maps(model, ids) -> list[torch.Tensor]:
    """Run model on ids (1-D or (1, T)) in eval mode, without gradients; one (H, T, T) map per layer.

    Works with llmbook GPT and BERT (any model taking ``return_attention=True`` and returning
    ``.attentions``). The model's train/eval mode is restored afterwards. Raises ValueError for an
    empty input or one longer than the model's context length.
    """
    ids = torch.as_tensor(ids, dtype=torch.long).reshape(1, -1)  # (1, T)
    limit = model.config.context_length  # every llmbook model's config names it so
    if ids.size(1) == 0:
        raise ValueError("the text encodes to 0 tokens: nothing to attend to")
    if ids.size(1) > limit:
        raise ValueError(f"the text is {ids.size(1)} tokens long, beyond the context length {limit}")
    device = next(model.parameters()).device
    with inference_mode(model):  # dropout off: the picture must not change from one redraw to the next
        # every token is real: without this BERT would hide keys whose id equals its pad_id
        out = model(ids.to(device), attention_mask=torch.ones_like(ids, device=device), return_attention=True)
    return [a[0].float().cpu() for a in out.attentions]  # (1, H, T, T) -> (H, T, T) per layer


def _heatmap_png(weights, tokens, title) -> bytes:
    """The heatmap of weights (T, T) as PNG bytes, sized for the number of tokens."""
    side = min(8.0, 1.5 + 0.3 * len(tokens))
    return figure_png(lambda ax: plot_attention(weights, tokens, ax=ax, title=title), (side + 1.0, side))


def attention_explorer(model, tokenizer, text, layer=0, head=0):
    """Interactive heatmap: type a text, pick a layer and a head, see who attends to whom.

    model: llmbook GPT or BERT (see attention_maps); tokenizer: has encode(str) -> list[int] and
    decode(list[int]) -> str. Returns an ipywidgets VBox: a text box, layer and head sliders, a
    status line and the heatmap (an <img> in an HTML widget, so the first picture is kept in saved
    notebooks and has alt text).
    """
    import ipywidgets as widgets

    config = getattr(model, "config", None)
    if not (hasattr(config, "n_layers") and hasattr(config, "n_heads")):
        raise TypeError(f"attention_explorer needs a GPT or BERT (a config with n_layers and n_heads), "
                        f"got {type(model).__name__}")
    n_layers, n_heads = config.n_layers, config.n_heads
    text_box = widgets.Text(value=text, description="text", continuous_update=False,
                            layout=widgets.Layout(width="95%"))
    layer_slider = widgets.IntSlider(value=layer, min=0, max=n_layers - 1, description="layer")
    head_slider = widgets.IntSlider(value=head, min=0, max=n_heads - 1, description="head")
    status = widgets.HTML()
    image = widgets.HTML()  # an <img> with alt text (an Image widget cannot have one)
    state = {"text": None, "maps": None, "tokens": None}

    def redraw(_change=None):
        # No print(): output from a callback has nowhere sensible to go; the status line says it.
        try:
            if state["text"] != text_box.value:
                ids = tokenizer.encode(text_box.value)
                state["maps"], state["tokens"] = attention_maps(model, ids), token_strings(tokenizer, ids)
                state["text"] = text_box.value
            weights = state["maps"][layer_slider.value][head_slider.value]  # (T, T)
            title = f"layer {layer_slider.value}, head {head_slider.value}"
            image.value = png_img_tag(_heatmap_png(weights, state["tokens"], title),
                                      f"Heatmap of the attention weights of {title} for the text "
                                      f"{state['text']!r}: one row per query token, one column per key token")
            status.value = f"{len(state['tokens'])} tokens"
        except (ValueError, KeyError, IndexError) as err:  # an unknown character, a text too long
            state["text"] = None
            status.value = f"<span style='color:#b00'>cannot show this text: {html.escape(str(err))}</span>"

    for control in (text_box, layer_slider, head_slider):
        control.observe(redraw, names="value")
    redraw()
    return widgets.VBox([text_box, widgets.HBox([layer_slider, head_slider]), status, image])
