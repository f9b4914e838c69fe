"""Generated corpora, toy tasks and batching helpers; nothing is downloaded.

Every generator takes a `seed` (or a torch.Generator) and returns the same data for the same seed
on every machine. Text generators use Python's `random.Random(seed)`; tensor generators use a
`torch.Generator` seeded with `seed`. The modules:

- `toy_grammar`: a small English grammar with subject-verb agreement, its parser and agreement task;
- `chinese`: a small Chinese corpus from templates;
- `tasks`: copy, reverse, dates and addition, tasks with exact answers;
- `reviews`: sentiment reviews with labels, and an oracle that reads a review back;
- `pretraining`: BERT's inputs, masked tokens and next-sentence pairs;
- `batching`: padding, teacher-forcing targets and language-model windows.

Every public name is importable from `llmbook.data` itself. The real text that ships with the
package (Shakespeare, the Tang poems) is in `llmbook.corpora`.

Used in every chapter.
"""
from .batching import lm_batch, pad_batch, teacher_forcing_targets
from .chinese import chinese_corpus
from .pretraining import mask_tokens, nsp_pairs
from .reviews import review_aspects, review_label, sentiment_task
from .tasks import (
                    BOS_ID,
                    EOS_ID,
                    N_TASK_SPECIALS,
                    PAD_ID,
                    addition_task,
                    addition_text,
                    copy_task,
                    date_task,
                    reverse_task,
)
from .toy_grammar import TOY_GRAMMAR_WORD_CLASSES, ToySentence, agreement_task, parse_toy_sentence, toy_grammar_corpus

__all__ = [
    "BOS_ID", "EOS_ID", "N_TASK_SPECIALS", "PAD_ID", "TOY_GRAMMAR_WORD_CLASSES", "ToySentence",
    "addition_task", "addition_text", "agreement_task", "chinese_corpus", "copy_task", "date_task",
    "lm_batch", "mask_tokens", "nsp_pairs", "pad_batch", "parse_toy_sentence", "reverse_task",
    "review_aspects", "review_label", "sentiment_task", "teacher_forcing_targets", "toy_grammar_corpus",
]
