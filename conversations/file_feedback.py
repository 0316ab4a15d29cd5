"""Telling the patient what their files turned out to be, and the small questions that follow:
"Is this the scan you meant?" and "Which part of the checklist is this file?".

These questions are asked beside the intake, not as a step of it: the patient may be anywhere
in the conversation when a check finishes. Their buttons carry their own ids (`scan:` and
`sort:`), so they work whatever question is on screen.
"""

from __future__ import annotations

from conversations.effects import Effect, FileSorted, NotifyCoordinators
from conversations.events import STORE_SOURCE, CoordinatorNotice, FileRef, Option, Outbound
from conversations.i18n import Translator, bilingual
from conversations.state import ConversationState, RecordFile, RecordItem
from conversations.step import Outcome
from conversations.transition import Transition, render
from records.checklist import ITEMS, checklist_for
from records.markers import N_
from records.report import FileCheck, FilesReport, FlagLine, StudyLine

SIDE_PREFIXES = ("scan:", "sort:")
SIDE_PROMPT = "side"
IMAGING = "imaging"
# Above this many files, one line per kind instead of one per file.
LIST_FILES_UP_TO = 8
MAX_PREVIEWS_SHOWN = 3

MODALITIES = {
    "CT": N_("CT scan"),
    "MR": N_("MRI scan"),
    "PT": N_("PET scan"),
    "NM": N_("nuclear medicine scan"),
    "US": N_("ultrasound"),
    "CR": N_("X-ray"),
    "DX": N_("X-ray"),
    "MG": N_("mammogram"),
    "XA": N_("angiogram"),
    "RF": N_("fluoroscopy"),
    "OCT": N_("eye scan (OCT)"),
}

BODY_PARTS = {
    "HEAD": N_("head"),
    "BRAIN": N_("brain"),
    "NECK": N_("neck"),
    "CHEST": N_("chest"),
    "LUNG": N_("lungs"),
    "HEART": N_("heart"),
    "BREAST": N_("breast"),
    "ABDOMEN": N_("abdomen"),
    "LIVER": N_("liver"),
    "PELVIS": N_("pelvis"),
    "SPINE": N_("spine"),
    "CSPINE": N_("neck spine"),
    "TSPINE": N_("upper back spine"),
    "LSPINE": N_("lower back spine"),
    "KNEE": N_("knee"),
    "HIP": N_("hip"),
    "SHOULDER": N_("shoulder"),
    "WHOLEBODY": N_("whole body"),
}

ARCHIVE_PROBLEMS = {
    "ratio": N_(
        "{name} unpacks to far more than its size suggests, the way harmful archives do, so "
        "for safety I kept none of it. If it is a hospital disc, please send the folder "
        "through the upload page instead."
    ),
    "too_large": N_(
        "{name} unpacks to more than I can take in one archive, so I kept none of it. Please "
        "send its files in smaller parts, or through the upload page."
    ),
    "too_many_entries": N_(
        "{name} holds more files than I can take in one archive, so I kept none of it. Please "
        "send it in smaller parts, or the folder through the upload page."
    ),
    "unsafe_path": N_(
        "{name} contains entries that point outside the archive, which can be harmful, so I "
        "kept none of it. Please send the files themselves instead."
    ),
    "link": N_(
        "{name} contains links to other places on a computer, which can be harmful, so I kept "
        "none of it. Please send the files themselves instead."
    ),
    "special": N_(
        "{name} contains entries that are not ordinary files, so I kept none of it. Please "
        "send the files themselves instead."
    ),
    "too_deep": N_(
        "{name} has archives inside archives, too many levels deep, so I kept none of it. "
        "Please unpack it and send the files themselves."
    ),
    "encrypted": N_(
        "{name} is protected by a password, so I can't open it and kept none of it. Please "
        "send it again without a password."
    ),
    "corrupt": N_(
        "{name} seems damaged or incomplete, so I couldn't open it and kept none of it. Please "
        "try sending it again."
    ),
}

FILE_PROBLEMS = {
    "executable": N_(
        "{name} contains a computer program. Programs have no place in medical records, so "
        "for safety I didn't keep it."
    ),
    "empty": N_(
        "{name} is empty, so there was nothing to keep. Please check it and send it again."
    ),
    "quota": N_(
        "This case has reached the most it can hold, so I didn't keep {name}. A coordinator "
        "will help you with anything more."
    ),
    "too_large": N_("{name} is larger than I can take, so I didn't keep it."),
    "unreadable": N_("Sorry, I couldn't save {name}. Please try sending it again."),
    "unreachable": N_("Sorry, I couldn't save {name}. Please try sending it again."),
    "no_space": N_(
        "Sorry, I couldn't store {name} just now, so I didn't keep it. Please send it again a "
        "little later; your other files and answers are safe."
    ),
    "duplicate": N_("You already sent {name} earlier (as {earlier}), so I kept just one copy."),
    "not_checked": N_(
        "{name} took too long to check, so I stopped. I kept it for a coordinator to look at."
    ),
    "not_dicom": N_(
        "{name} doesn't look like a scan file I can read. I kept it in case a coordinator can."
    ),
    "truncated": N_(
        "{name} looks cut off, as if it was not copied completely. I kept it, but please send "
        "it again if you can, or ask the hospital for a new copy."
    ),
    "too_deep": N_(
        "{name} is a scan file I couldn't read. I kept it for a coordinator; if you can, ask "
        "the hospital for a new copy."
    ),
    "locked_pdf": N_(
        "{name} is protected by a password, so I can't open it. Please send a copy without "
        "the password; the hospital, or the app you downloaded it from, can usually save one."
    ),
    "unreadable_dicom": N_(
        "{name} is a scan file I couldn't read. I kept it for a coordinator; if you can, ask "
        "the hospital for a new copy."
    ),
}

FLAGS = {
    "stale": N_(
        "The {scan} from {date} is {age} old. For this kind of case specialists usually want "
        "scans from the last {limit}, so they may ask for a newer one. If you have a more "
        "recent scan, please send it too."
    ),
    "patient_mismatch": N_(
        "The name or birth date stored inside the {scan} from {date} doesn't match the "
        "patient's. Please check that these are the patient's own scans."
    ),
    "mixed_patients": N_(
        "These scans seem to belong to more than one person. Please check that they are all "
        "the patient's own."
    ),
    "nothing_usable": N_(
        "I couldn't find any images in these scan files. Specialists need the image files "
        "themselves; the hospital's imaging department can copy them for you."
    ),
}


def _locate(state: ConversationState, file_id: str) -> tuple[list[RecordFile], RecordFile] | None:
    for record in state.draft.records.values():
        for file in record.files:
            if file.file_id == file_id:
                return record.files, file
    for file in state.draft.unsorted_files:
        if file.file_id == file_id:
            return state.draft.unsorted_files, file
    return None


def _item_of(state: ConversationState, file_id: str) -> tuple[str, RecordItem] | None:
    for item_id, record in state.draft.records.items():
        if any(file.file_id == file_id for file in record.files):
            return item_id, record
    return None


def files_checked(state: ConversationState, report: FilesReport, t: Translator) -> Transition:
    """Apply a batch's report to the draft and say, in one message, what arrived."""
    lines: list[str] = []
    problems: list[str] = []
    photos_as_imaging = False
    for check in report.files:
        found = _locate(state, check.file_id)
        if found is None:
            continue  # the draft was restarted meanwhile; the files stay with the old case
        files, file = found
        if not check.kept:
            _drop(state, files, file)
            problems.append(_problem_text(check, t))
            continue
        file.status = "stored"
        file.kind = check.kind
        if check.problem and check.problem not in COORDINATOR_ONLY:
            problems.append(_problem_text(check, t))
        problems += _inside_archive(check, t)
        placed = _item_of(state, file.file_id)
        if placed is None:
            _place_unsorted(state, file, check)
        elif placed[0] == IMAGING and check.kind == "image":
            photos_as_imaging = True
        lines.append(_file_line(check, t))
    notes: list[str] = []
    if lines:
        shown = lines if len(lines) <= LIST_FILES_UP_TO else [_summary_line(report.files, t)]
        notes.append("\n".join([t("I've checked what you sent:"), *shown]))
    if report.studies:
        notes.append(
            "\n".join([t("Scans I found:"), *(_study_line(study, t) for study in report.studies)])
        )
    studies = {study.key: study for study in report.studies}
    stale = [flag for flag in report.flags if flag.code == "stale"]
    if len(stale) > 1:  # one paragraph for all the old studies, not one each
        notes.append(_stale_together(stale, studies, t))
    notes += [
        _flag_text(flag, studies.get(flag.study_key), t)
        for flag in report.flags
        if flag.code != "stale" or len(stale) == 1
    ]
    notes += [_no_preview_text(study, t) for study in report.studies if _no_preview(study)]
    notes += problems
    if photos_as_imaging:
        notes.append(photo_advice(t))
    replies = [Outbound(text="\n\n".join(notes), locale=state.locale)] if notes else []
    replies += _preview_questions(state, report.studies, t)
    replies += _sorting_question(state, t)
    return Transition(state, replies, _tell_coordinators(state, report), via="system")


def _tell_coordinators(state: ConversationState, report: FilesReport) -> list[Effect]:
    """Files for a case already in the queue (asked for, or sent later): coordinators hear."""
    submitted = next((c for c in state.submitted if c.case_id == state.draft.case_id), None)
    kept = [check for check in report.files if check.kept]
    if submitted is None or not kept:
        return []
    text = bilingual(
        N_("Case {reference}: new files from the patient: {count}."),
        reference=submitted.reference,
        count=len(kept),
    )
    scripted = sum(1 for check in kept if check.problem == "pdf_javascript")
    if scripted:
        text += "\n" + bilingual(
            N_(
                "Among them, PDFs with JavaScript inside: {count}. They are kept and flagged; "
                "open them with scripts turned off."
            ),
            count=scripted,
        )
    notice = CoordinatorNotice(case_id=submitted.case_id, case_ref=submitted.reference, text=text)
    return [NotifyCoordinators(notice=notice)]


def _drop(state: ConversationState, files: list[RecordFile], file: RecordFile) -> None:
    files.remove(file)
    # A question about where it belongs would now point at nothing.
    if file.file_id in state.draft.sorting:
        state.draft.sorting.remove(file.file_id)
    placed = [r for r in state.draft.records.values() if r.files is files]
    if placed and not placed[0].files and placed[0].status == "uploaded":
        placed[0].status = "later"


def _place_unsorted(state: ConversationState, file: RecordFile, check: FileCheck) -> None:
    """A file sent outside the checklist: scans go to imaging; for anything else, ask."""
    items = {item.id for item in checklist_for(state.draft.area)}
    if (check.kind == "dicom" or check.dicom_files) and IMAGING in items:
        state.draft.unsorted_files.remove(file)
        record = state.draft.records.setdefault(IMAGING, RecordItem())
        record.files.append(file)
        record.status = "uploaded"
    elif file.file_id not in state.draft.sorting:
        state.draft.sorting.append(file.file_id)


def _file_line(check: FileCheck, t: Translator) -> str:
    name = check.name or t("a file")
    if check.members:
        return "• " + t.plural(
            "{name}: {count} file inside", "{name}: {count} files inside", check.members, name=name
        )
    kinds = {
        "dicom": N_("{name}: a scan image file (DICOM)"),
        "dicomdir": N_("{name}: the index of a scan disc"),
        "image": N_("{name}: a photo or picture"),
        "pdf": N_("{name}: a document (PDF)"),
        "word": N_("{name}: a document"),
        "text": N_("{name}: a text"),
    }
    return "• " + t(kinds.get(check.kind, N_("{name}: a file")), name=name)


def _summary_line(checks: list[FileCheck], t: Translator) -> str:
    kept = [check for check in checks if check.kept]
    scans = sum(c.dicom_files or (1 if c.kind == "dicom" else 0) for c in kept)
    files = t.plural("{count} file", "{count} files", len(kept))
    images = t.plural("{count} scan image", "{count} scan images", scans)
    return "• " + t("{files}, of which {images}", files=files, images=images)


def scan_name(study: StudyLine | None, t: Translator) -> str:
    if study is None:
        return t("scan")
    kinds = [t(MODALITIES[m]) if m in MODALITIES else m for m in study.modalities] or [t("scan")]
    parts = [t(BODY_PARTS[p]) if p in BODY_PARTS else p.lower() for p in study.body_parts]
    name = t.join(kinds)
    return t("{scan} of the {part}", scan=name, part=t.join(parts)) if parts else name


def person(study: StudyLine, t: Translator) -> str:
    """DICOM writes names as FAMILY^GIVEN; read aloud as "GIVEN FAMILY"."""
    parts = [part.strip() for part in study.patient_name.split("^") if part.strip()]
    name = " ".join(parts[1:2] + parts[:1] + parts[2:]) if parts else ""
    if study.patient_birth_date is None:
        return name
    return t("{name}, born {date}", name=name, date=t.date(study.patient_birth_date))


def _study_line(study: StudyLine, t: Translator) -> str:
    when = t.date(study.study_date) if study.study_date else t("date unknown")
    line = t(
        "{scan}, {date}: {series}, {images}",
        scan=scan_name(study, t),
        date=when,
        series=t.plural("{count} series", "{count} series", study.series),
        images=t.plural("{count} image", "{count} images", study.images),
    )
    return f"• {line}"


def _flag_text(flag: FlagLine, study: StudyLine | None, t: Translator) -> str:
    when = t.date(study.study_date) if study and study.study_date else t("an unknown date")
    values = {"scan": scan_name(study, t), "date": when}
    count = flag.missing or 0
    # Literal plural calls, so the extractor sees each pair as one plural message.
    if flag.code == "missing_instances":
        return t.plural(
            "Part of the {scan} from {date} seems to be missing (about {count} image). If you "
            "have the complete disc or folder, please send all of it.",
            "Part of the {scan} from {date} seems to be missing (about {count} images). If you "
            "have the complete disc or folder, please send all of it.",
            count,
            **values,
        )
    if flag.code == "missing_from_disc":
        return t.plural(
            "The disc's index lists {count} file that did not arrive. If you have the whole "
            "disc or folder, please send all of it.",
            "The disc's index lists {count} files that did not arrive. If you have the whole "
            "disc or folder, please send all of it.",
            count,
            **values,
        )
    if flag.code == "stale":
        age, limit = _age(flag.age_days or 0, t), _span(flag.stale_after_days or 0, t)
        return t(FLAGS["stale"], age=age, limit=limit, **values)
    return t(FLAGS.get(flag.code, FLAGS["nothing_usable"]), **values)


def _stale_together(flags: list[FlagLine], studies: dict[str, StudyLine], t: Translator) -> str:
    lines = []
    for flag in flags:
        study = studies.get(flag.study_key)
        when = t.date(study.study_date) if study and study.study_date else t("an unknown date")
        lines.append(
            "• "
            + t(
                "{scan} from {date}, {age} old",
                scan=scan_name(study, t),
                date=when,
                age=_age(flag.age_days or 0, t),
            )
        )
    return "\n".join(
        [
            t(
                "Some of these scans are older than specialists usually want for this kind of "
                "case (scans from the last {limit}):",
                limit=_span(flags[0].stale_after_days or 0, t),
            ),
            *lines,
            t("They may ask for newer ones. If you have more recent scans, please send them too."),
        ]
    )


# Up to this many months an age is told in months, beyond it in years.
AGE_IN_MONTHS_UP_TO = 24
_DAYS_PER_MONTH = 365.25 / 12


def _age(days: int, t: Translator) -> str:
    """ "about 7 months", "about 23 years"."""
    months = round(days / _DAYS_PER_MONTH)
    if months <= AGE_IN_MONTHS_UP_TO:
        return t.plural("about {count} month", "about {count} months", months)
    years = round(days / 365.25)
    return t.plural("about {count} year", "about {count} years", years)


def _span(days: int, t: Translator) -> str:
    """ "3 months", "2 years": how far back scans are wanted."""
    months = round(days / _DAYS_PER_MONTH)
    if months <= AGE_IN_MONTHS_UP_TO or months % 12:
        return t.plural("{count} month", "{count} months", months)
    return t.plural("{count} year", "{count} years", months // 12)


NO_PREVIEW = {
    "no_decoder": N_(
        "I couldn't show you a picture of the {scan} from {date}: it is saved in a compressed "
        "format I can't open. The files are safely kept, and the specialists' own viewers can "
        "open them."
    ),
    "bad_data": N_(
        "I couldn't show you a picture of the {scan} from {date}: its image data may be "
        "damaged. The files are kept for a coordinator to look at; if you can, ask the "
        "hospital for a new copy."
    ),
}


def _no_preview(study: StudyLine) -> bool:
    return not study.preview and study.preview_problem in NO_PREVIEW


def _no_preview_text(study: StudyLine, t: Translator) -> str:
    when = t.date(study.study_date) if study.study_date else t("an unknown date")
    return t(NO_PREVIEW[study.preview_problem], scan=scan_name(study, t), date=when)


def _problem_text(check: FileCheck, t: Translator) -> str:
    name = check.name or t("This file")
    if check.kind in ("zip", "tar") and check.problem in ARCHIVE_PROBLEMS:
        return t(ARCHIVE_PROBLEMS[check.problem], name=name)
    key = check.problem
    if check.kind in ("dicom", "dicomdir") and key in ("unreadable", "executable_preamble"):
        key = "unreadable_dicom" if key == "unreadable" else "executable"
    text = FILE_PROBLEMS.get(key, FILE_PROBLEMS["unreadable"])
    return t(text, name=name, earlier=check.duplicate_of or name)


# Problems for the coordinator's eyes only: the file is kept and flagged, the patient has
# nothing to do about it.
COORDINATOR_ONLY = frozenset({"pdf_javascript"})

# Members with a problem told one by one; past this many, the rest in one line.
MEMBER_PROBLEMS_TOLD = 3


def _inside_archive(check: FileCheck, t: Translator) -> list[str]:
    """What was left out of an archive, and its members' problems, as for loose files."""
    name = check.name or t("a file")
    notes: list[str] = []
    if check.programs_left_out:
        notes.append(
            t.plural(
                "{name} had {count} program inside (such as a disc viewer). Programs have no "
                "place in medical records, so I left it out and kept everything else.",
                "{name} had {count} programs inside (such as a disc viewer). Programs have no "
                "place in medical records, so I left them out and kept everything else.",
                check.programs_left_out,
                name=name,
            )
        )
    told = [m for m in check.member_problems if m.problem not in COORDINATOR_ONLY]
    for member in told[:MEMBER_PROBLEMS_TOLD]:
        inner = member.path.rsplit("/", 1)[-1] or member.path
        shown = FileCheck(
            file_id="",
            name=t("{file} (in {archive})", file=inner, archive=name),
            kind=member.kind,
            problem=member.problem,
        )
        notes.append(_problem_text(shown, t))
    more = len(told) - MEMBER_PROBLEMS_TOLD
    if more > 0:
        notes.append(
            t.plural(
                "{count} more file in {name} has a problem like these. I kept it for a "
                "coordinator to look at.",
                "{count} more files in {name} have problems like these. I kept them for a "
                "coordinator to look at.",
                more,
                name=name,
            )
        )
    return notes


def photo_advice(t: Translator) -> str:
    item = ITEMS[IMAGING]
    return "\n".join(
        [
            t(
                "Thank you for the photo. Photos of films or screens help, but specialists need "
                "the original scan files (called DICOM) to review the images themselves."
            ),
            t(item.how_to_get),
            t("You can show this sentence to hospital staff:"),
            item.request_zh,
        ]
    )


# --- "Is this the scan you meant?" ---------------------------------------------------------


def _preview_questions(
    state: ConversationState, studies: list[StudyLine], t: Translator
) -> list[Outbound]:
    replies: list[Outbound] = []
    for study in studies:
        if not study.preview or state.draft.scans.get(study.key) in ("confirmed", "not_meant"):
            continue
        if len(replies) >= MAX_PREVIEWS_SHOWN:
            break
        state.draft.scans[study.key] = "asked"
        when = t.date(study.study_date) if study.study_date else t("date unknown")
        text = t("Is this the scan you meant? {scan}, {date}.", scan=scan_name(study, t), date=when)
        if study.patient_name:
            state.draft.scan_people[study.key] = (study.patient_name, study.patient_birth_date)
            text += "\n" + t("The scan names: {person}", person=person(study, t))
        replies.append(
            Outbound(
                text=text,
                files=(
                    FileRef(
                        source=f"{STORE_SOURCE}{study.preview}",
                        name="preview.png",
                        mime_type="image/png",
                    ),
                ),
                options=(
                    Option(id=f"scan:{study.key}:yes", label=t("Yes, that's it")),
                    Option(id=f"scan:{study.key}:no", label=t("No, that's not it")),
                ),
                prompt_ref=SIDE_PROMPT,
                locale=state.locale,
            )
        )
    return replies


# --- "Which part of the checklist is this file?" -------------------------------------------


def _sorting_question(state: ConversationState, t: Translator) -> list[Outbound]:
    while state.draft.sorting:
        found = _locate(state, state.draft.sorting[0])
        if found is not None and found[1].status == "stored":
            file = found[1]
            break
        state.draft.sorting.pop(0)
    else:
        return []
    short = file.file_id[:8]
    options = tuple(
        Option(id=f"sort:{short}:{item.id}", label=t(item.label))
        for item in checklist_for(state.draft.area)
    )
    return [
        Outbound(
            text=t("Which part of the checklist is {name}?", name=file.name or t("this file")),
            options=(*options, Option(id=f"sort:{short}:", label=t("None of these"))),
            prompt_ref=SIDE_PROMPT,
            locale=state.locale,
        )
    ]


def side_choice(state: ConversationState, choice_id: str, t: Translator) -> Transition:
    kind, _, rest = choice_id.partition(":")
    if kind == "scan":
        key, _, answer = rest.partition(":")
        return _scan_answer(state, key, answer, t)
    short, _, item_id = rest.partition(":")
    return _sort_answer(state, short, item_id, t)


def _scan_answer(state: ConversationState, key: str, answer: str, t: Translator) -> Transition:
    if state.draft.scans.get(key) != "asked":
        return _already_answered(state, t)
    if answer == "yes":
        state.draft.scans[key] = "confirmed"
        named = state.draft.scan_people.get(key)
        if named is not None and state.draft.patient_name is None:
            state.draft.patient_name, state.draft.patient_birth_date = named
        note = t("Thank you. The scan is with your case.")
    else:
        state.draft.scans[key] = "not_meant"
        note = t(
            "Thank you for telling me. I'll mark it so the coordinator knows it isn't the scan "
            "you meant. Please send the right one whenever you have it."
        )
    return _then_current_question(state, [note])


def _sort_answer(state: ConversationState, short: str, item_id: str, t: Translator) -> Transition:
    file_id = next((f for f in state.draft.sorting if f.startswith(short)), None)
    found = _locate(state, file_id) if file_id else None
    if file_id is None or found is None:
        return _already_answered(state, t)
    state.draft.sorting.remove(file_id)
    files, file = found
    notes: list[str] = []
    effects: list[Effect] = []
    if item_id and item_id in {item.id for item in checklist_for(state.draft.area)}:
        effects.append(FileSorted(file_id=file.file_id, item=item_id))
        files.remove(file)
        record = state.draft.records.setdefault(item_id, RecordItem())
        record.files.append(file)
        record.status = "uploaded"
        label = t(ITEMS[item_id].label)
        notes.append(t("Thank you. {name} is now under: {item}", name=file.name, item=label))
        if item_id == IMAGING and file.kind == "image":
            notes.append(photo_advice(t))
    else:
        notes.append(t("Thank you. I'll keep {name} with your case as it is.", name=file.name))
    following = _sorting_question(state, t)
    if following:
        replies = [Outbound(text=note, locale=state.locale) for note in notes]
        return Transition(state, [*replies, *following], effects, via="system")
    transition = _then_current_question(state, notes)
    transition.effects += effects
    return transition


def _then_current_question(state: ConversationState, notes: list[str]) -> Transition:
    """After a side question, the intake's own question again, so its buttons are at hand."""
    return Transition(state, render(state, Outcome(notes=notes)), via="system")


def _already_answered(state: ConversationState, t: Translator) -> Transition:
    note = t("That question about your files was already answered. Here is where we are now:")
    return Transition(state, render(state, Outcome(notes=[note])), via="command")
