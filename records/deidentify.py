"""The de-identified copy of a DICOM instance that specialists see, by the DICOM standard's
basic application confidentiality profile (PS3.15 annex E), with dicognito doing the work:
names (patient, physicians, operators) and ids replaced, addresses and institutions
replaced, UIDs remapped and dates shifted, both from one seed per patient so every study of
that patient maps the same way and the intervals between scans are kept. Birth dates and
private attributes go altogether. Text burned into the pixels cannot be removed here: it is
flagged for a coordinator to look at."""

from __future__ import annotations

from collections.abc import Iterator

from dicognito.anonymizer import Anonymizer
from dicognito.element_anonymizer import ElementAnonymizer
from pydicom import DataElement
from pydicom.dataset import Dataset

# Secondary capture (screenshots, scanned films): the image is a picture of whatever was on
# the screen or paper, names included.
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
_CAPTURED_MODALITIES = frozenset({"SC", "OT", "XC", "DOC"})
# Ultrasound machines burn the patient's name into the frame as a rule; only an explicit
# BurnedInAnnotation NO is believed.
_USUALLY_BURNED = frozenset({"US"})


class _Removed(ElementAnonymizer):
    """Elements emptied outright (PS3.15 action Z): a shifted birth date still points at a
    person, and age is what a specialist needs (PatientAge is kept)."""

    def __init__(self, *keywords: str) -> None:
        self.keywords = frozenset(keywords)

    def __call__(self, dataset: Dataset, data_element: DataElement) -> bool:
        if data_element.keyword not in self.keywords:
            return False
        data_element.value = ""
        return True

    def describe_actions(self) -> Iterator[str]:
        yield from (f"Empty {keyword}" for keyword in sorted(self.keywords))


class _PrivateRemoved(ElementAnonymizer):
    """Private attributes go (PS3.15 action X): no one can say what a vendor put there. In
    dicognito's own walk, not a second walk of the whole dataset."""

    def __call__(self, dataset: Dataset, data_element: DataElement) -> bool:
        if not data_element.tag.is_private:
            return False
        del dataset[data_element.tag]
        return True

    def describe_actions(self) -> Iterator[str]:
        yield "Remove private attributes"


class _DatesKept(ElementAnonymizer):
    """Claims dates and times before dicognito shifts them (ORTHANC_KEEP_DATES)."""

    def __call__(self, dataset: Dataset, data_element: DataElement) -> bool:
        return data_element.VR in ("DA", "DT", "TM")

    def describe_actions(self) -> Iterator[str]:
        yield "Keep dates and times"


class Deidentifier:
    """De-identifies instances of one patient in place. Not shared between threads."""

    def __init__(self, seed: str, keep_dates: bool = False) -> None:
        self._anonymizer = Anonymizer(seed=seed)
        if keep_dates:
            self._anonymizer.add_element_handler(_DatesKept())
        self._anonymizer.add_element_handler(_Removed("PatientBirthDate", "PatientBirthTime"))
        self._anonymizer.add_element_handler(_PrivateRemoved())

    def apply(self, dataset: Dataset) -> None:
        self._anonymizer.anonymize(dataset)
        # Said in the copy itself (dicognito marks it only where the field already was), so
        # a viewer or a PACS downstream knows what it holds.
        dataset.PatientIdentityRemoved = "YES"


def may_show_burned_in_text(dataset: Dataset) -> bool:
    """Whether the pixels may carry a name or an id that no header change removes."""
    flag = str(dataset.get("BurnedInAnnotation", "")).strip().upper()
    if flag == "YES":
        return True
    sop_class = str(dataset.get("SOPClassUID", ""))
    modality = str(dataset.get("Modality", "")).strip().upper()
    if sop_class.startswith(SECONDARY_CAPTURE) or modality in _CAPTURED_MODALITIES:
        return True
    return modality in _USUALLY_BURNED and flag != "NO"
