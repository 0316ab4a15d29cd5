"""The case summary as one standalone HTML page: no scripts, no external resources (the page
may be opened offline, or on a machine that must not reach the internet), every value escaped.

Each half carries its language; the patient's own words sit in `<bdi dir="auto">`, so Arabic
or Hebrew reads right to left inside the surrounding text and never reorders it."""

from __future__ import annotations

from html import escape

from handlers.documents.summary import CaseSummary, Entry, Half, Section

STYLE = """
body { font-family: "Noto Sans", "Noto Sans CJK SC", "Noto Naskh Arabic", sans-serif;
       max-width: 52rem; margin: 2rem auto; padding: 0 1rem; line-height: 1.5; color: #111; }
header { border-bottom: 1px solid #ccc; margin-bottom: 1rem; }
section.half + section.half { border-top: 3px double #999; margin-top: 2.5rem; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.25rem; margin: 1.4rem 0 .4rem; }
p { margin: .15rem 0; }
.mark, .prepared { color: #666; }
.words { white-space: pre-line; }
.translation { background: #fff8dc; padding: .2rem .4rem; }
table { border-collapse: collapse; font-size: .85rem; margin: .5rem 0; }
th, td { border: 1px solid #bbb; padding: .2rem .4rem; text-align: start; vertical-align: top; }
"""


def render_html(summary: CaseSummary) -> str:
    title = f"{summary.reference} · 会诊病例摘要 / Case summary"
    halves = "\n".join(_half(summary, half) for half in summary.halves)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="zh-Hans" dir="ltr">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        # Nothing loads from elsewhere, even if someone adds a link later.
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'\">\n"
        f"<title>{escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
        f"<header><p>{escape(title)}</p></header>\n{halves}\n</body>\n</html>\n"
    )


def _half(summary: CaseSummary, half: Half) -> str:
    language = half.language
    parts = [
        f'<section class="half" lang="{escape(language.code)}" dir="ltr">',
        f"<h1>{escape(language.title)}</h1>",
        f'<p class="prepared">{escape(half.prepared)}</p>',
    ]
    for section in half.sections:
        parts.append(_section(section, language.code, summary.locale))
        if section.studies and summary.studies:
            parts.append(_studies(summary, half))
    parts += [
        f"<h2>{escape(language.checklist_title)}</h2>",
        *(f"<p>{escape(line)}</p>" for line in half.checklist),
        f"<h2>{escape(language.fit_title)}</h2>",
        *(f"<p>{escape(line)}</p>" for line in half.fit),
        "</section>",
    ]
    return "\n".join(parts)


def _section(section: Section, half_code: str, patient_locale: str) -> str:
    anchor = escape(f"{half_code}-{section.id}")
    parts = [
        f'<section id="{anchor}" class="{escape(section.id)}">',
        f"<h2>{escape(section.heading)}</h2>",
        *(_entry(entry, patient_locale) for entry in section.entries),
    ]
    if section.translation:
        parts.append(
            f'<p class="translation"><strong>{escape(section.translation_label)}</strong> '
            f'<bdi dir="auto">{escape(section.translation)}</bdi></p>'
        )
    parts += [_entry(entry, patient_locale) for entry in section.documents]
    parts.append("</section>")
    return "\n".join(parts)


def _entry(entry: Entry, patient_locale: str) -> str:
    pieces = [escape(entry.text)] if entry.text else []
    if entry.words:
        # The chat's language: the best hint of what the patient wrote in.
        lang = escape(patient_locale.replace("_", "-"))
        pieces.append(f'<bdi dir="auto" lang="{lang}" class="words">{escape(entry.words)}</bdi>')
    if entry.mark:
        pieces.append(f'<span class="mark">{escape(entry.mark)}</span>')
    return f"<p>{' '.join(pieces)}</p>"


def _studies(summary: CaseSummary, half: Half) -> str:
    language = half.language
    head = "".join(f"<th>{escape(column)}</th>" for column in language.study_columns)
    rows = "".join(
        "<tr>" + "".join(f"<td>{escape(cell)}</td>" for cell in study.cells) + "</tr>"
        for study in summary.studies
    )
    return (
        f"<table><caption>{escape(language.studies_title)}</caption>"
        f"<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
    )
