"""From a language model to an assistant: instruction data with a chat template, the log-probability of
a response, a Bradley-Terry reward model's loss, best-of-n selection and direct preference
optimisation (DPO, Rafailov et al., 2023).

Labels follow one convention throughout: labels has the shape of ids, labels[b, t] = ids[b, t] where
token t belongs to the response (it is scored), and -100 elsewhere (the prompt, padding). A causal
model predicts token t from tokens < t, so the log-probability of token t is read from the logits at
position t - 1.

Taught in chapter 10, Adapting and aligning models.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import torch
import torch.nn.functional as F

IGNORE = -100  # the label of a token that is not scored


# ------------------------------------------------------------------------------- chat template
@dataclass(frozen=True)
class ChatTemplate:
    """How a (instruction, response) pair becomes text: prompt_format holds {instruction}, and
    response_format holds {response}. The text around the placeholders is made of role markers, each
    a special token of the tokenizer (encode_chat looks them up with tok.token_to_id).

    Raises ValueError when the prompt part would contain the response (it would then be masked out of
    the loss and, worse, given to the model as input), or when a part lacks its placeholder."""

    prompt_format: str = "<user>{instruction}<assistant>"
    response_format: str = "{response}<end>"

    def __post_init__(self):
        if "{response}" in self.prompt_format:
            raise ValueError(f"prompt_format={self.prompt_format!r} contains {{response}}: the response's tokens "
                             f"would sit in the prompt, where they are masked out of the loss and visible "
                             f"to the model as input")
        if "{instruction}" not in self.prompt_format:
            raise ValueError(f"prompt_format={self.prompt_format!r} lacks the {{instruction}} placeholder")
        if "{response}" not in self.response_format or "{instruction}" in self.response_format:
            raise ValueError(f"response_format={self.response_format!r} must hold {{response}} and not "
                             f"{{instruction}}")

    def prompt(self, instruction: str) -> str:
        return self.prompt_format.format(instruction=instruction)

    def response(self, response: str) -> str:
        return self.response_format.format(response=response)


def encode_chat(tok, template: ChatTemplate, instruction: str, response: str,
                mask_prompt: bool = True) -> tuple[list[int], list[int]]:
    """(ids, labels) of one example: the prompt's tokens then the response's; labels are -100 on the
    prompt when mask_prompt (so only the response is learned), else a copy of ids.

    The two parts are encoded separately, so no token can straddle the boundary. Raises ValueError
    when the instruction or the response contains a role marker of the template (an injected turn)."""
    for marker in _markers(template):
        if marker in instruction or marker in response:
            raise ValueError(f"the text contains the role marker {marker!r}; a user could forge a turn with it")
    prompt_ids = _encode(tok, template.prompt(instruction), _markers(template))
    response_ids = _encode(tok, template.response(response), _markers(template))
    ids = prompt_ids + response_ids
    labels = ([IGNORE] * len(prompt_ids) if mask_prompt else list(prompt_ids)) + list(response_ids)
    return ids, labels


def _markers(template: ChatTemplate) -> list[str]:
    """The literal text of both formats around their placeholders (the role markers)."""
    parts = template.prompt_format.replace("{instruction}", "\0").split("\0")
    parts += template.response_format.replace("{response}", "\0").split("\0")
    return [p for p in parts if p]


def _encode(tok, text: str, markers: list[str]) -> list[int]:
    """Token ids of text, each role marker as its own special token (tok.token_to_id)."""
    ids = []
    for piece in re.split("(" + "|".join(map(re.escape, markers)) + ")", text):
        if piece in markers:
            ids.append(tok.token_to_id(piece))
        elif piece:
            ids += tok.encode(piece)
    return ids


def pad_examples(examples, pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad a list of (ids, labels) to one (B, T) tensor each; padding gets label -100."""
    T = max(len(ids) for ids, _ in examples)
    ids = torch.full((len(examples), T), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), T), IGNORE, dtype=torch.long)
    for i, (x, y) in enumerate(examples):
        ids[i, :len(x)] = torch.tensor(x)
        labels[i, :len(y)] = torch.tensor(y)
    return ids, labels


# -------------------------------------------------------------------------- log-probabilities
def _logits(model, ids):
    out = model(ids)
    return out if isinstance(out, torch.Tensor) else out.logits


def token_logprobs(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """log p(label t | tokens < t) for t >= 1, 0 where the label is -100: (B, T - 1).

    logits: (B, T, V) of a causal model on ids (B, T); labels: (B, T)."""
    if logits.shape[:2] != labels.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and labels {tuple(labels.shape)} disagree on (B, T)")
    targets = labels[:, 1:]
    scored = targets != IGNORE
    log_probs = logits[:, :-1].log_softmax(-1).gather(-1, targets.clamp(min=0)[..., None])[..., 0]
    return log_probs * scored


def sequence_logprobs(model, ids: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """log pi(response | prompt): the sum over the scored tokens (labels != -100) of their
    log-probabilities under model; ids, labels: (B, T) -> (B,). The first token is never scored
    (nothing predicts it). Raises ValueError for a row with no scored token."""
    if ids.shape != labels.shape:
        raise ValueError(f"ids {tuple(ids.shape)} and labels {tuple(labels.shape)} must have the same shape")
    empty = (labels[:, 1:] == IGNORE).all(-1)
    if empty.any():
        raise ValueError(f"rows {empty.nonzero().flatten().tolist()} have no scored response token")
    return token_logprobs(_logits(model, ids), labels).sum(-1)


# ------------------------------------------------------------------------ rewards and preferences
def bradley_terry_loss(chosen_rewards: torch.Tensor, rejected_rewards: torch.Tensor) -> torch.Tensor:
    """-mean log sigmoid(r_chosen - r_rejected): the negative log-likelihood of the observed preferences
    under the Bradley-Terry model P(chosen > rejected) = sigmoid(r_chosen - r_rejected)."""
    return -F.logsigmoid(chosen_rewards - rejected_rewards).mean()


def dpo_loss(policy_chosen_logps: torch.Tensor, policy_rejected_logps: torch.Tensor,
             ref_chosen_logps: torch.Tensor, ref_rejected_logps: torch.Tensor,
             beta: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """DPO: the implicit reward of a response is beta (log pi(y|x) - log pi_ref(y|x)); the loss is the
    Bradley-Terry loss of the chosen against the rejected response under those rewards.

    All four inputs (B,): sequence log-probabilities. Returns (loss, chosen_rewards, rejected_rewards),
    the rewards detached (B,). Raises ValueError for beta <= 0 or inputs of different shapes."""
    if not beta > 0:
        raise ValueError(f"beta={beta} must be > 0")
    shapes = {tuple(t.shape) for t in (policy_chosen_logps, policy_rejected_logps, ref_chosen_logps,
                                       ref_rejected_logps)}
    if len(shapes) != 1:
        raise ValueError(f"the four log-probability tensors must have one shape, got {sorted(shapes)}")
    chosen = beta * (policy_chosen_logps - ref_chosen_logps)
    rejected = beta * (policy_rejected_logps - ref_rejected_logps)
    return bradley_terry_loss(chosen, rejected), chosen.detach(), rejected.detach()


def best_of_n(candidates: list[list], rewards: torch.Tensor) -> tuple[list, torch.Tensor]:
    """For each prompt b, the candidate with the highest reward: (chosen candidates, their rewards (B,)).

    candidates: B lists of n candidates each; rewards: (B, n). Ties go to the first candidate."""
    if rewards.dim() != 2 or rewards.shape[0] != len(candidates) or any(len(c) != rewards.shape[1]
                                                                         for c in candidates):
        raise ValueError(f"rewards {tuple(rewards.shape)} must be (B, n) for B = {len(candidates)} prompts "
                         f"with n candidates each")
    best = rewards.argmax(-1)
    return [c[i] for c, i in zip(candidates, best.tolist())], rewards.gather(-1, best[:, None])[:, 0]
