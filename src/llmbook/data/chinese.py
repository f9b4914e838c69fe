"""A small Chinese corpus from sentence templates, for the tokenizers of chapter 2.

Used in chapter 2, Core concepts.
"""
from __future__ import annotations

import random

from ._validate import check_int

_ZH_SUBJECTS = ["我", "你", "他", "她", "我们", "他们", "老师", "学生", "妈妈", "爸爸", "小明", "小红", "朋友们"]
_ZH_TIMES = ["今天", "昨天", "明天", "早上", "晚上", "周末", "每天"]
_ZH_PLACES = ["学校", "家里", "公园", "图书馆", "饭店", "商店", "北京", "上海"]
_ZH_ADJECTIVES = ["高兴", "忙", "累", "开心"]
_ZH_VERB_OBJECTS = {  # each verb with the objects that go with it
    "吃": ["苹果", "米饭", "面条", "饺子"],
    "喝": ["茶", "咖啡", "牛奶", "水"],
    "看": ["书", "电影", "报纸"],
    "写": ["信", "作业", "小说"],
    "买": ["衣服", "水果", "书", "礼物"],
    "学习": ["中文", "数学", "历史", "音乐"],
}
_ZH_TEMPLATES = [
    "{time}{subj}在{place}{verb}{obj}。",
    "{subj}{time}去{place}{verb}{obj}。",
    "{subj}喜欢{verb}{obj}。",
    "{subj}{time}很{adj}。",
    "{subj}不想{verb}{obj}。",
]


def chinese_corpus(n_sentences: int, seed: int = 0) -> str:
    """`n_sentences` short Chinese sentences from templates, one per line, each ending with 。.

    Verbs only take objects that fit them (喝 takes 茶, not 米饭). Raises ValueError if n_sentences < 1.
    """
    check_int("n_sentences", n_sentences, 1)
    rng = random.Random(seed)
    lines = []
    for _ in range(n_sentences):
        verb = rng.choice(sorted(_ZH_VERB_OBJECTS))
        slots = {
            "subj": rng.choice(_ZH_SUBJECTS), "time": rng.choice(_ZH_TIMES),
            "place": rng.choice(_ZH_PLACES), "adj": rng.choice(_ZH_ADJECTIVES),
            "verb": verb, "obj": rng.choice(_ZH_VERB_OBJECTS[verb]),
        }
        lines.append(rng.choice(_ZH_TEMPLATES).format(**slots))
    return "\n".join(lines) + "\n"
