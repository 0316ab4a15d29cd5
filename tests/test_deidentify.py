"""The specialists' copy of an instance (records/deidentify.py), without Orthanc: what goes,
what is kept, what maps consistently, and what is flagged for a coordinator."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset

from records.deidentify import Deidentifier, may_show_burned_in_text
from tests.dicom_factory import write_instance, write_series

NAME = "QUOKKA^PERPETUA"


def _two_studies(tmp_path: Path) -> tuple[Dataset, Dataset]:
    first = write_series(
        tmp_path / "a", count=1, seed="a", patient_name=NAME, study_date=date(2026, 1, 10)
    )[0]
    second = write_series(
        tmp_path / "b", count=1, seed="b", patient_name=NAME, study_date=date(2026, 3, 11)
    )[0]
    return pydicom.dcmread(first), pydicom.dcmread(second)


def test_names_ids_birth_dates_and_private_attributes_go(tmp_path: Path) -> None:
    dataset = _two_studies(tmp_path)[0]
    dataset.ReferringPhysicianName = "HOUSE^GREGORY"
    dataset.add_new(0x00091010, "LO", "vendor secret")
    original_id, original_uid = dataset.PatientID, dataset.StudyInstanceUID
    Deidentifier("seed").apply(dataset)
    assert str(dataset.PatientName) != NAME and "HOUSE" not in str(dataset)
    assert dataset.PatientID != original_id
    assert dataset.PatientBirthDate == ""
    assert dataset.InstitutionName != "General Hospital"
    assert not [element for element in dataset if element.tag.is_private]
    assert dataset.StudyInstanceUID != original_uid
    assert dataset.PatientIdentityRemoved == "YES"


def test_one_seed_maps_uids_and_shifts_dates_the_same_way(tmp_path: Path) -> None:
    a, b = _two_studies(tmp_path)
    a_again = pydicom.dcmread(tmp_path / "a" / "IM00001")
    for dataset in (a, b):
        Deidentifier("the patient's seed").apply(dataset)
    Deidentifier("the patient's seed").apply(a_again)
    assert a.StudyInstanceUID == a_again.StudyInstanceUID
    assert a.SOPInstanceUID == a_again.SOPInstanceUID
    interval = pydicom.valuerep.DA(b.StudyDate) - pydicom.valuerep.DA(a.StudyDate)
    assert interval.days == 60 and a.StudyDate != "20260110"
    other = pydicom.dcmread(tmp_path / "a" / "IM00001")
    Deidentifier("another patient's seed").apply(other)
    assert other.StudyInstanceUID != a.StudyInstanceUID


def test_dates_can_be_kept(tmp_path: Path) -> None:
    dataset = _two_studies(tmp_path)[0]
    Deidentifier("seed", keep_dates=True).apply(dataset)
    assert dataset.StudyDate == "20260110"
    assert dataset.PatientBirthDate == ""


def test_burned_in_text_is_flagged(tmp_path: Path) -> None:
    def instance(name: str, modality: str, flag: str | None = None) -> Dataset:
        path = write_instance(
            tmp_path / name,
            study_uid="1.2.3",
            series_uid="1.2.3.4",
            sop_uid=f"1.2.3.4.{name}",
            modality=modality,
        )
        dataset = pydicom.dcmread(path)
        if modality == "US":
            dataset.SOPClassUID = "1.2.840.10008.5.1.4.1.1.6.1"  # Ultrasound Image Storage
        if flag is not None:
            dataset.BurnedInAnnotation = flag
        return dataset

    assert not may_show_burned_in_text(instance("1", "CT"))
    assert may_show_burned_in_text(instance("2", "CT", "YES"))
    assert may_show_burned_in_text(instance("3", "SC"))
    assert may_show_burned_in_text(instance("4", "US"))
    assert not may_show_burned_in_text(instance("5", "US", "NO"))
    captured = instance("6", "CT")
    captured.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    assert may_show_burned_in_text(captured)
