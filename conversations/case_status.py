"""A case's statuses and the one table of moves between them.

Every change of a case's status, whoever makes it (a coordinator from the chat or the CLI, the
patient withdrawing or asking a follow-up question, retention), is checked against `MOVES`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal


class CaseStatus(StrEnum):
    SUBMITTED = "submitted"
    IN_REVIEW = "in_review"
    WAITING_FOR_PATIENT = "waiting_for_patient"
    READY_TO_SEND = "ready_to_send"
    SENT_TO_SPECIALIST = "sent_to_specialist"
    OPINION_RECEIVED = "opinion_received"
    OPINION_DELIVERED = "opinion_delivered"
    CLOSED = "closed"
    DECLINED = "declined"
    # The patient withdrew consent: nothing more may be done with the case.
    WITHDRAWN = "withdrawn"


S = CaseStatus

# Forward along the path, and the sensible moves back (a claim returned, a case reopened).
MOVES: dict[CaseStatus, frozenset[CaseStatus]] = {
    S.SUBMITTED: frozenset({S.IN_REVIEW, S.DECLINED}),
    S.IN_REVIEW: frozenset({S.SUBMITTED, S.WAITING_FOR_PATIENT, S.READY_TO_SEND, S.DECLINED}),
    S.WAITING_FOR_PATIENT: frozenset({S.IN_REVIEW, S.READY_TO_SEND, S.DECLINED}),
    S.READY_TO_SEND: frozenset({S.IN_REVIEW, S.WAITING_FOR_PATIENT, S.SENT_TO_SPECIALIST}),
    S.SENT_TO_SPECIALIST: frozenset({S.READY_TO_SEND, S.OPINION_RECEIVED}),
    S.OPINION_RECEIVED: frozenset({S.SENT_TO_SPECIALIST, S.OPINION_DELIVERED}),
    S.OPINION_DELIVERED: frozenset({S.IN_REVIEW, S.CLOSED}),
    S.CLOSED: frozenset({S.IN_REVIEW}),
    S.DECLINED: frozenset({S.IN_REVIEW}),
    S.WITHDRAWN: frozenset(),
}

# Nothing more will happen to a case in these: retention may erase it once it is old.
ENDED = frozenset({S.CLOSED, S.DECLINED, S.WITHDRAWN})

# Coordinators have finished with a case in these: quiet (never idle), and a withdrawal
# leaves such a case as it is. A delivered opinion has not ended: a follow-up may come.
FINISHED = ENDED | {S.OPINION_DELIVERED}

# A coordinator has the case in hand and is preparing it: items may be requested of the
# patient, and the card suggests directions.
PREPARING = frozenset({S.IN_REVIEW, S.WAITING_FOR_PATIENT, S.READY_TO_SEND})

# The patient's own moves, which no coordinator makes: withdrawing consent stops any open
# case; a follow-up question about a delivered opinion returns the case to review.
PatientAction = Literal["withdraw", "follow_up"]
PATIENT_MOVES: dict[PatientAction, tuple[frozenset[CaseStatus], CaseStatus]] = {
    "withdraw": (frozenset(S) - FINISHED, S.WITHDRAWN),
    "follow_up": (frozenset({S.OPINION_DELIVERED, S.CLOSED}), S.IN_REVIEW),
}


VALUES = frozenset(S)


def can_move(before: str, after: str) -> bool:
    """A coordinator's move from `before` to `after` is allowed (never from or to a status
    the table does not know)."""
    return before in VALUES and after in VALUES and after in MOVES[CaseStatus(before)]


def patient_move(action: PatientAction, before: str) -> CaseStatus | None:
    """Where the patient's `action` ("withdraw", "follow_up") takes a case now in `before`;
    None when the table does not allow it from there (the case stays as it is)."""
    allowed_from, after = PATIENT_MOVES[action]
    return after if before in allowed_from else None
