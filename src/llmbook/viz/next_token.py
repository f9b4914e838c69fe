"""The next-token distribution under temperature, top-k and top-p: computed, drawn as bars, and
explored with sliders (chapters 2 and 7).

Used in chapters 2, Core concepts, and 7, Inference engineering.
"""
from __future__ import annotations

import html
import math

import torch

from ..generate import inference_mode, top_k_filter, top_p_filter
from .images import figure_png, png_img_tag
from .labels import display_token, token_labels


def next_token_distribution(model, ids, temperature=1.0, top_k=None, top_p=None) -> torch.Tensor:
    """(V,) probabilities of the token after ids (1-D) that sampling with these settings draws from.

    The model's logits for the last position are divided by the temperature, filtered by top-k and
    top-p (llmbook.generate's filters, None = off), and put through a softmax; temperature 0 puts
    all the probability on the argmax (greedy). The model's train/eval mode is restored.
    Raises ValueError for an empty input, one longer than the context, or a bad setting.
    """
    ids = torch.as_tensor(ids, dtype=torch.long).reshape(1, -1)  # (1, T)
    if ids.size(1) == 0:
        raise ValueError("the text encodes to 0 tokens: there is nothing to continue")
    limit = model.config.context_length
    if ids.size(1) > limit:
        raise ValueError(f"the text is {ids.size(1)} tokens long, beyond the context length {limit}")
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    with inference_mode(model):
        logits = model(ids.to(next(model.parameters()).device)).logits[0, -1].float().cpu()  # (V,)
    if temperature == 0:
        return torch.nn.functional.one_hot(logits.argmax(), logits.numel()).float()
    logits = logits / temperature
    if top_k is not None:
        logits = top_k_filter(logits, top_k)
    if top_p is not None:
        logits = top_p_filter(logits, top_p)
    return logits.softmax(-1)


def plot_next_token(probs, tokens, reference=None, ax=None, n_show=15, title=None,
                    label="sampling distribution", reference_label="temperature 1, no filter"):
    """Bar chart of next-token probabilities probs (V,); tokens: V labels.

    reference: another (V,) distribution drawn as hatched outlines behind the bars. The n_show
    tokens most likely under reference (or under probs without one) are shown, most likely first.
    Returns the matplotlib Axes.
    """
    import matplotlib.pyplot as plt

    probs = torch.as_tensor(probs).detach().float().cpu()
    tokens = token_labels(tokens, probs.numel(), "tokens", "entries")
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3))
    base = probs if reference is None else torch.as_tensor(reference).float().cpu()
    order = base.argsort(descending=True)[: min(n_show, probs.numel())]
    x = list(range(len(order)))
    if reference is not None:
        ax.bar(x, base[order].tolist(), width=0.8, fill=False, hatch="///", edgecolor="grey", label=reference_label)
    ax.bar(x, probs[order].tolist(), width=0.5, color="#33336b", label=label)
    ax.set_xticks(x, [tokens[i] for i in order.tolist()])
    ax.set_xlabel("next token")
    ax.set_ylabel("probability")
    ax.set_ylim(0, 1.05 * max(float(probs.max()), float(base.max())))
    if title:
        ax.set_title(title)
    ax.legend(fontsize=8)
    return ax


def _bars_png(probs, reference, tokens, title) -> bytes:
    """plot_next_token's chart as PNG bytes."""
    return figure_png(lambda ax: plot_next_token(probs, tokens, reference, ax=ax, title=title), (7.5, 3.2))


def next_token_explorer(model, tokenizer, text, temperature=1.0, top_k=0, top_p=1.0, filters=True):
    """Interactive bar chart of the next-token distribution under temperature, top-k and top-p.

    Type a prompt and move the sliders (top_k 0 and top_p 1 mean "off"); the status line says how
    many tokens can still be drawn and the entropy of the distribution. filters=False shows the
    temperature slider only, for readers who have not met top-k and top-p yet. model: a GPT;
    tokenizer: encode(str) -> list[int], decode(list[int]) -> str, vocab_size. Returns an ipywidgets
    VBox: the prompt, a row of sliders, the status line and the chart. Raises TypeError for a
    tokenizer without vocab_size, ValueError for top_k or top_p switched on with filters=False.
    """
    import ipywidgets as widgets

    vocab = getattr(tokenizer, "vocab_size", None)
    if not isinstance(vocab, int) or vocab < 1:
        raise TypeError("next_token_explorer needs a tokenizer with a vocab_size")
    if not filters and (top_k != 0 or top_p != 1.0):
        raise ValueError(f"filters=False shows no top-k or top-p slider, so top_k must be 0 and top_p 1.0, "
                         f"got top_k={top_k}, top_p={top_p}")
    labels = [display_token(tokenizer.decode([i])) for i in range(vocab)]
    text_box = widgets.Text(value=text, description="prompt", continuous_update=False,
                            layout=widgets.Layout(width="95%"))
    temp_slider = widgets.FloatSlider(value=temperature, min=0.0, max=3.0, step=0.05, description="temperature",
                                      continuous_update=False)
    k_slider = widgets.IntSlider(value=top_k, min=0, max=vocab, description="top-k", continuous_update=False)
    p_slider = widgets.FloatSlider(value=top_p, min=0.05, max=1.0, step=0.05, description="top-p",
                                   continuous_update=False)
    sliders = [temp_slider, k_slider, p_slider] if filters else [temp_slider]
    status = widgets.HTML()
    image = widgets.HTML()  # an <img> with alt text (an Image widget cannot have one)

    def redraw(_change=None):
        try:
            ids = tokenizer.encode(text_box.value)
            top_k = k_slider.value or None
            top_p = p_slider.value if p_slider.value < 1.0 else None
            probs = next_token_distribution(model, ids, temp_slider.value, top_k, top_p)
            reference = next_token_distribution(model, ids)
            kept = int((probs > 0).sum())
            entropy = -sum(p * math.log(p) for p in probs.tolist() if p > 0)
            title = f"T = {temp_slider.value:.2f}"
            if filters:
                title += f", top-k = {top_k or 'off'}, top-p = {top_p or 'off'}"
            image.value = png_img_tag(_bars_png(probs, reference, labels, title),
                                      f"Bar chart of the next-token probabilities after {text_box.value!r} "
                                      f"with {title}, next to the unfiltered distribution")
            status.value = f"{kept} of {vocab} tokens can be drawn; entropy {entropy:.2f} nats"
        except (ValueError, KeyError, IndexError) as err:
            status.value = f"<span style='color:#b00'>cannot show this text: {html.escape(str(err))}</span>"

    for control in (text_box, *sliders):
        control.observe(redraw, names="value")
    redraw()
    return widgets.VBox([text_box, widgets.HBox(sliders), status, image])
