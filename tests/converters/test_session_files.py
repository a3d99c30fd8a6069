"""The metadata checks every session converter shares."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from nwbridge.converters.session_files import check_dandi_metadata
from nwbridge.errors import MissingMetadataError


def _metadata(**subject):
    return {"NWBFile": {"session_id": "1", "session_start_time": "2021-05-10T13:47:08+01:00"},
            "Subject": {"subject_id": "m", "species": "Mus musculus", "sex": "F", **subject}}


def test_a_date_of_birth_given_as_text_is_a_date_in_the_session_s_time_zone():
    metadata = _metadata(date_of_birth="2020-03-01")
    check_dandi_metadata(metadata, source_hint="here")
    birth = metadata["Subject"]["date_of_birth"]
    assert birth == datetime(2020, 3, 1, tzinfo=metadata["NWBFile"]["session_start_time"].tzinfo)
    assert birth.utcoffset().total_seconds() == 3600


def test_text_times_are_parsed_in_place():
    metadata = _metadata(age="P90D")
    check_dandi_metadata(metadata, source_hint="here")
    assert metadata["NWBFile"]["session_start_time"] == datetime(2021, 5, 10, 12, 47, 8, tzinfo=timezone.utc)


@pytest.mark.parametrize("field, value, named", [
    ("session_start_time", "yesterday", "NWBFile.session_start_time"),
    ("date_of_birth", "March 2020", "Subject.date_of_birth"),
])
def test_unreadable_times_name_the_field(field, value, named):
    metadata = _metadata(age="P90D")
    if field == "session_start_time":
        metadata["NWBFile"][field] = value
    else:
        metadata["Subject"][field] = value
    with pytest.raises(MissingMetadataError) as raised:
        check_dandi_metadata(metadata, source_hint="here")
    assert named in raised.value.missing
    assert repr(value) in str(raised.value)
