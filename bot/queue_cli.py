"""`huizhen queue …`: the coordinator queue from a terminal on the server.

list, show, claim, request, status, translate, opinion, export, remind. Acting commands take
`--as ID` (a coordinator's account id, checked against COORDINATOR_IDS when that is set);
each action is recorded and reaches the patient and the coordinators' chat like a button
press would (the running bot delivers the messages)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bot.app import App, build_app
from bot.config import Settings
from conversations.case_status import CaseStatus
from handlers.casework.desk import render_card
from handlers.casework.operations import Actor, CaseworkRefused
from handlers.documents.summary import SECTIONS
from records.checklist import ITEMS

# Plain strings, so argparse's help and errors read as a coordinator types them.
STATUS_NAMES = [status.value for status in CaseStatus]


def add_commands(queue: argparse.ArgumentParser) -> None:
    commands = queue.add_subparsers(dest="queue_command", required=True)
    listing = commands.add_parser("list", help="cases in the queue, one line each")
    listing.add_argument("--status", choices=STATUS_NAMES, help="only cases with this status")
    show = commands.add_parser("show", help="one case: its card, documents and history")
    show.add_argument("reference")
    claim = commands.add_parser("claim", help="take a submitted case")
    claim.add_argument("reference")
    request = commands.add_parser("request", help="ask the patient for checklist items")
    request.add_argument("reference")
    request.add_argument("items", nargs="+", metavar="ITEM", help=f"one of: {', '.join(ITEMS)}")
    request.add_argument("--note", default="", help="a note to the patient (sent as written)")
    status = commands.add_parser("status", help="move a case to another status")
    status.add_argument("reference")
    status.add_argument("status", choices=STATUS_NAMES)
    status.add_argument("--note", default="", help="a note kept with the change")
    status.add_argument("--reason", default="", help="for declined: the reason the patient sees")
    translate = commands.add_parser("translate", help="attach a translation of a section")
    translate.add_argument("reference")
    translate.add_argument("section", choices=[spec.id for spec in SECTIONS])
    translate.add_argument("text")
    opinion = commands.add_parser("opinion", help="attach the written opinion and deliver it")
    opinion.add_argument("reference")
    opinion.add_argument("original", type=Path)
    opinion.add_argument("--translation", type=Path)
    export = commands.add_parser("export", help="write the case package (a zip)")
    export.add_argument("reference")
    export.add_argument("--out", type=Path, required=True)
    commands.add_parser("remind", help="send due reminders and report idle cases, once")
    for acting in (show, claim, request, status, translate, opinion, export):
        acting.add_argument("--as", dest="actor", default="", help="your coordinator id")


def run(settings: Settings, args: argparse.Namespace) -> int:
    app = build_app(settings)
    try:
        return _dispatch(app, args)
    except CaseworkRefused as refused:
        print(str(refused), file=sys.stderr)
        return 1
    except OSError as error:
        print(f"Could not read or write a file: {error.strerror or error}", file=sys.stderr)
        return 1
    finally:
        app.close()


def _dispatch(app: App, args: argparse.Namespace) -> int:
    work = app.casework
    command = args.queue_command
    actor = Actor(getattr(args, "actor", "") or "operator", "cli")
    if command == "list":
        return _list(app, args.status)
    if command == "show":
        return _show(app, args.reference, actor)
    if command == "claim":
        case = work.claim(args.reference, actor)
    elif command == "request":
        case = work.request(args.reference, args.items, actor, note=args.note)
    elif command == "status":
        case = work.move(args.reference, args.status, actor, note=args.note, reason=args.reason)
    elif command == "translate":
        work.translate(args.reference, args.section, args.text, actor)
        case = work.case(args.reference)
    elif command == "opinion":
        case = work.attach_opinion(args.reference, args.original, args.translation, actor)
    elif command == "export":
        return _export(app, args.reference, args.out, actor)
    else:
        app.scheduled_work()
        print("Reminders and idle cases checked.")
        return 0
    print(f"{case.reference}: {case.status}")
    return 0


def _list(app: App, status: str | None) -> int:
    cases = app.queue.list(status)
    if not cases:
        print("The queue is empty." if not status else f"No cases with status {status}.")
    for case in cases:
        submitted = case.submitted_at.strftime("%Y-%m-%d %H:%M")
        print(
            f"{case.reference}  {case.status:<19} {submitted}  {case.locale:<7} "
            f"{case.area:<15} {case.verdict:<13} readiness {case.readiness}%  "
            f"{case.coordinator or '-'}"
        )
    return 0


def _show(app: App, reference: str, actor: Actor) -> int:
    case = app.casework.record_view(reference, actor)
    now = app.pipeline.clock()
    events = app.casework.events(case.id)
    print(render_card(case, now, events).text)
    if app.imaging is not None:
        studies = app.imaging.lines_for_case(case.id)
        if studies:
            print("\nImaging:")
            for line in studies:
                print("  " + line.replace("\n", "\n  "))
    print("\nDocuments:")
    for document in app.documents.for_case(case.id):
        where = document.path or document.original_name
        print(f"  {document.item or '-':<20} {document.kind:<14} {document.size:>12,}  {where}")
    print("\nHistory:")
    for event in events:
        change = f"{event.from_status} -> {event.to_status}" if event.to_status else ""
        details = json.loads(event.details_json or "{}")
        extra = f" {details}" if details else ""
        note = f'  "{event.note}"' if event.note else ""
        print(
            f"  {event.at:%Y-%m-%d %H:%M}  {event.actor:<16} {event.kind:<12} {change}{extra}{note}"
        )
    return 0


def _export(app: App, reference: str, out: Path, actor: Actor) -> int:
    from handlers.documents.case_package import write_package  # the PDF fonts load only when needed

    work = app.casework
    work.authorise(actor, "export", reference)
    case = work.case(reference)
    if case.status == CaseStatus.WITHDRAWN:
        raise CaseworkRefused("The patient withdrew consent: this case can no longer be exported.")
    written = write_package(
        case,
        app.documents.for_case(case.id),
        app.pipeline.files,
        out,
        work.translations(case.id),
        app.pipeline.clock(),
    )
    work.record_export(reference, written, actor)
    print(f"{case.reference}: written to {written}")
    return 0
