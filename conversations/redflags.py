"""The red-flag check run on every free-text answer.

It errs towards caution: a false alarm costs the patient one button press, a missed emergency
costs far more. Patterns are per language; every supported language is checked on every text,
because people mix languages when frightened.
"""

from __future__ import annotations

import re

_ENGLISH = [
    r"chest (pain|pressure|tightness)",
    r"pain in (my|his|her|the) chest",
    r"(can'?t|cannot|can ?not|unable to|struggling to|hard to) breathe?",
    r"short(ness)? of breath",
    r"not breathing",
    r"stroke",
    r"face (is )?droop",
    r"(slurred|slurring) (speech|words)",
    r"(sudden|suddenly).{0,20}(numb|weak|paraly[sz]|confus|blind|can'?t (see|speak|talk))",
    r"(heavy|severe|uncontrolled|won'?t stop|can'?t stop) bleed",
    r"bleeding (heavily|badly|a lot|won'?t stop)",
    r"(vomit|cough)ing (up )?blood",
    r"unconscious|passed out|fainted|not waking|unresponsive|seizure|fitting",
    r"suicid|kill (my|him|her)self|end (my|his|her) life|self[- ]?harm|hurt (my|him|her)self",
    r"want to die|don'?t want to live",
    r"overdose",
    r"anaphyla",
]

_CHINESE = [
    r"胸(口)?(痛|疼|闷)",
    r"(喘不(过|上)气|呼吸困难|不能呼吸|无法呼吸|透不过气|憋气)",
    r"中风|脑卒中|卒中|口角歪斜|嘴歪|说话不清|口齿不清|半身(不遂|麻木|无力)",
    r"(大|不停|止不住)(量)?出血|血流不止|吐血|咳血|便血不止",
    r"昏迷|昏倒|晕倒|失去意识|叫不醒|抽搐",
    r"自杀|轻生|不想活|想死|自残|伤害自己|结束(自己的)?生命",
    r"过量服药|吃了很多药",
    r"过敏性休克",
]

_PATTERN = re.compile("|".join(f"(?:{p})" for p in _ENGLISH + _CHINESE), re.IGNORECASE)


def is_red_flag(text: str) -> bool:
    """True when the text describes something that needs emergency care now."""
    return bool(_PATTERN.search(text))
