"""Allen stimulus presentations, protocol blocks (epochs) and stimulus templates, checked value by
value against the session file read with h5py."""

from __future__ import annotations

import shutil
from datetime import datetime, timezone

import h5py
import numpy as np
import pytest
from hdmf.common import VectorIndex
from pynwb import NWBHDF5IO, NWBFile
from pynwb.base import TimeSeriesReferenceVectorData
from pynwb.epoch import TimeIntervals
from pynwb.image import ImageSeries

from nwbridge.errors import SourceFileError
from nwbridge.interfaces.allen.stimuli import AllenStimulusInterface
from nwbridge.interfaces.tables import Column, build_table
from support.allen_files import EditedSource

SHARED = ["start_time", "stop_time", "stimulus_type", "stimulus_block", "is_passive", "stimulus_name"]
KIND_COLUMNS = {
    "natural_image": ["image_name", "is_change", "omitted", "flashes_since_change", "start_frame", "end_frame",
                      "trials_id"],
    "gabor": ["contrast", "position_x", "position_y", "phase", "orientation"],
    "flash": ["color"],
    "spontaneous": [],
}
OPTOTAGGING = "processing/optotagging/optogenetic_stimulation"
MISSING_TEXT = ("N/A", "None", "nan", "NaN", "")


# --- reading the source independently ----------------------------------------------------------

def source_table(raw, kind: str) -> str:
    prefix = {"natural_image": "Natural_Images", "gabor": "gabor", "flash": "flash", "spontaneous": "spontaneous"}
    names = [name for name in raw["intervals"] if name.startswith(prefix[kind]) and name.endswith("_presentations")]
    assert len(names) == 1
    return f"intervals/{names[0]}"


def raw_column(raw, location: str) -> np.ndarray:
    values = raw[location][:]
    if values.dtype.kind == "O":
        return np.array([v.decode() if isinstance(v, bytes) else v for v in values], dtype=object)
    return values


def raw_colnames(raw, table: str) -> list[str]:
    return [c.decode() if isinstance(c, bytes) else str(c) for c in raw[table].attrs["colnames"]]


def raw_is_empty(values: np.ndarray) -> bool:
    """No value in any row: AllenSDK's fillers for columns of other stimuli."""
    if values.dtype.kind == "O":
        return all(v in MISSING_TEXT for v in values)
    if values.dtype.kind == "f":
        return bool(np.isnan(values).all())
    if values.dtype.kind in "iu":
        return bool(np.all(values == -99))
    return False


def assert_same_values(got: np.ndarray, expected: np.ndarray, name: str) -> None:
    """Values equal after the documented conversions (bool stored as float, numbers as text)."""
    got = np.asarray(got)
    if got.dtype == bool:
        assert not np.isnan(expected.astype(np.float64)).any(), name
        np.testing.assert_array_equal(got, expected.astype(np.float64) == 1.0, err_msg=name)
    elif got.dtype.kind == "f":
        if expected.dtype.kind == "O":
            expected = np.array([np.nan if v in MISSING_TEXT else float(v) for v in expected])
        np.testing.assert_array_equal(got, expected.astype(np.float64), err_msg=name)
    elif got.dtype.kind in "iu":
        np.testing.assert_array_equal(got, expected.astype(np.int64), err_msg=name)
    else:
        assert list(got) == list(expected), name


# --- editing sources -----------------------------------------------------------------------------

def edited_table(table, *, name: str | None = None, rows=None, **changes):
    """A copy of a source table in memory, of the given rows; ``changes``: column -> values (None: drop it)."""
    columns = []
    for column in table.colnames:
        if column in changes and changes[column] is None:
            continue
        vector = table[column]
        target = vector.target if isinstance(vector, VectorIndex) else vector
        if isinstance(target, TimeSeriesReferenceVectorData) or isinstance(vector, VectorIndex):
            continue  # ragged bookkeeping (tags, timeseries) is not what these tests are about
        values = changes.get(column, np.asarray(target.data[:]))
        if rows is not None and column not in changes:
            values = values[rows]
        columns.append(Column(column, target.description, values))
    return build_table(TimeIntervals, name=name or table.name, description=table.description, columns=columns)


def use_source(monkeypatch, source) -> None:
    monkeypatch.setattr(AllenStimulusInterface, "source", property(lambda self: source))


def new_file(**kwargs) -> NWBFile:
    return NWBFile(session_description="test", identifier="test",
                   session_start_time=datetime(2021, 5, 10, tzinfo=timezone.utc), **kwargs)


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """Like the ``roundtrip`` fixture, once per module: ``written(interface)`` is the file read back."""
    from nwbridge.writing import write_nwbfile_atomically

    handles = []

    def _written(interface):
        nwbfile = new_file()
        interface.add_to_nwbfile(nwbfile, metadata=None)
        path = write_nwbfile_atomically(nwbfile, tmp_path_factory.mktemp("written") / "stimuli.nwb")
        handles.append(NWBHDF5IO(path, mode="r"))
        return handles[-1].read()

    yield _written
    for io in handles:
        io.close()


@pytest.fixture(scope="module")
def converted(vbn_session, written):
    return written(AllenStimulusInterface(vbn_session.session_file))


# --- the generated session: every value -------------------------------------------------------

def test_one_table_per_kind_with_shared_columns_first(converted):
    for kind, columns in KIND_COLUMNS.items():
        table = converted.intervals[f"{kind}_presentations"]
        names = list(table.colnames)
        assert names[:len(SHARED) + len(columns)] == SHARED + columns, kind
        assert set(table["stimulus_type"][:]) == {kind}
        assert np.asarray(table["stimulus_block"].data[:]).dtype.kind == "i"
        assert np.asarray(table["is_passive"].data[:]).dtype == bool
        assert np.all(np.diff(table["start_time"][:]) >= 0)
        for name in names:
            assert table[name].description.strip(), (kind, name)


@pytest.mark.parametrize("kind", list(KIND_COLUMNS))
def test_every_source_value_round_trips(converted, vbn_raw, kind):
    location = source_table(vbn_raw, kind)
    table = converted.intervals[f"{kind}_presentations"]
    written = set(table.colnames)
    np.testing.assert_array_equal(table["is_passive"][:], ~raw_column(vbn_raw, f"{location}/active"))
    dropped = []
    for name in raw_colnames(vbn_raw, location):
        if name == "timeseries":
            # References into the source's stimulus frame timestamps, which are not copied.
            assert name not in written and "timeseries" in table.description
            continue
        if f"{location}/{name}_index" in vbn_raw:
            flat = raw_column(vbn_raw, f"{location}/{name}")
            ends = vbn_raw[f"{location}/{name}_index"][:]
            assert [list(row) for row in table[name][:]] == [list(row) for row in np.split(flat, ends[:-1])]
            continue
        expected = raw_column(vbn_raw, f"{location}/{name}")
        if name not in SHARED + KIND_COLUMNS[kind] and raw_is_empty(expected):
            assert name not in written, name
            dropped.append(name)
            continue
        assert name in written, name
        assert_same_values(table[name].data[:], expected, name)
    assert np.all(np.diff(raw_column(vbn_raw, f"{location}/start_time")) >= 0)  # row order kept as is
    if dropped:
        assert ", ".join(dropped) in table.description


def test_nullable_booleans_of_the_image_table(converted, vbn_raw):
    location = source_table(vbn_raw, "natural_image")
    table = converted.intervals["natural_image_presentations"]
    # AllenSDK stores these as float (pandas' nullable boolean): written as bool.
    for name in ("is_change", "omitted", "rewarded"):
        assert vbn_raw[f"{location}/{name}"].dtype == np.float64
        values = np.asarray(table[name].data[:])
        assert values.dtype == bool, name
        np.testing.assert_array_equal(values, raw_column(vbn_raw, f"{location}/{name}") == 1.0)
    assert np.asarray(table["is_change"].data[:]).any() and np.asarray(table["omitted"].data[:]).any()
    # is_image_novel has no value for omitted flashes: it stays float, NaN kept.
    novel = raw_column(vbn_raw, f"{location}/is_image_novel")
    assert np.isnan(novel).any()
    np.testing.assert_array_equal(table["is_image_novel"][:], novel)
    assert "NaN where the source has no value" in table["is_image_novel"].description
    omitted = np.asarray(table["omitted"].data[:])
    assert set(np.asarray(table["image_name"][:])[omitted]) == {"omitted"}


def test_passive_replay_is_flagged(converted, vbn_raw):
    table = converted.intervals["natural_image_presentations"]
    block = np.asarray(table["stimulus_block"].data[:])
    passive = np.asarray(table["is_passive"].data[:])
    assert set(block) == {0, 5}
    assert not passive[block == 0].any() and passive[block == 5].all()
    # The replay shows the task's image sequence again.
    names = np.asarray(table["image_name"][:])
    assert list(names[block == 0]) == list(names[block == 5])
    for kind in ("gabor", "flash", "spontaneous"):
        assert np.asarray(converted.intervals[f"{kind}_presentations"]["is_passive"].data[:]).all()


def expected_blocks(raw) -> list[tuple]:
    """(start, stop, protocol, stimulus name, Allen block) of every block, from h5py alone."""
    blocks = []
    for kind in KIND_COLUMNS:
        location = source_table(raw, kind)
        block = raw_column(raw, f"{location}/stimulus_block")
        start, stop = raw_column(raw, f"{location}/start_time"), raw_column(raw, f"{location}/stop_time")
        active = raw_column(raw, f"{location}/active")
        names = raw_column(raw, f"{location}/stimulus_name")
        for number in np.unique(block):
            rows = block == number
            protocol = {"gabor": "receptive_field_mapping", "flash": "flash", "spontaneous": "spontaneous"}.get(
                kind, "task" if active[rows].all() else "task_replay")
            first, last = start[rows].min(), stop[rows].max()
            if protocol == "task":
                # The task block spans every trial too.
                first = min(first, raw["intervals/trials/start_time"][:].min())
                last = max(last, raw["intervals/trials/stop_time"][:].max())
            blocks.append((first, last, protocol, names[rows][0], int(number)))
    blocks.append((raw[f"{OPTOTAGGING}/start_time"][:].min(), raw[f"{OPTOTAGGING}/stop_time"][:].max(),
                   "optotagging", "optotagging", None))
    return sorted(blocks, key=lambda block: block[0])


def test_epochs_cover_the_blocks_in_order(converted, vbn_raw, vbn_session):
    epochs = converted.epochs
    expected = expected_blocks(vbn_raw)
    assert list(epochs["protocol"][:]) == ["task", "spontaneous", "receptive_field_mapping", "spontaneous", "flash",
                                           "task_replay", "optotagging"]
    assert [block[2] for block in expected] == list(epochs["protocol"][:])
    np.testing.assert_array_equal(epochs["start_time"][:], [block[0] for block in expected])
    np.testing.assert_array_equal(epochs["stop_time"][:], [block[1] for block in expected])
    assert list(epochs["protocol_name"][:]) == [block[3] for block in expected]
    assert list(epochs["protocol_name"][:])[0] == vbn_session.image_set
    # Blocks follow one another without overlap, and the Allen numbers are the rows.
    assert np.all(epochs["stop_time"][:-1] <= epochs["start_time"][1:])
    assert [block[4] for block in expected[:-1]] == list(range(len(expected) - 1))
    # epochs[stimulus_block] is the protocol of every presentation.
    protocols = np.asarray(epochs["protocol"][:])
    for kind, allowed in (("natural_image", {"task", "task_replay"}), ("gabor", {"receptive_field_mapping"}),
                          ("flash", {"flash"}), ("spontaneous", {"spontaneous"})):
        table = converted.intervals[f"{kind}_presentations"]
        block = np.asarray(table["stimulus_block"].data[:])
        assert set(protocols[block]) == allowed
        inside = ((table["start_time"][:] >= epochs["start_time"][:][block])
                  & (table["stop_time"][:] <= epochs["stop_time"][:][block]))
        assert inside.all(), kind
    assert "stimulus_block" in epochs.description


def test_stimulus_templates_round_trip(converted, vbn_raw, vbn_session):
    name = vbn_session.image_set
    template = converted.stimulus_template[name]
    assert type(template) is ImageSeries
    source = f"stimulus/templates/{name}"
    np.testing.assert_array_equal(template.data[:], vbn_raw[f"{source}/data"][:])
    assert template.data.dtype == vbn_raw[f"{source}/data"].dtype
    np.testing.assert_array_equal(template.control[:], vbn_raw[f"{source}/control"][:])
    assert list(template.control_description[:]) == list(raw_column(vbn_raw, f"{source}/control_description"))
    # Every image name of the presentations can be looked up in the templates.
    shown = set(converted.intervals["natural_image_presentations"]["image_name"][:]) - {"omitted"}
    assert shown <= set(template.control_description[:])
    assert template.unit == "n.a."
    assert "unwarped" in template.description


def test_written_objects_conform_to_the_representation(vbn_session, tmp_path):
    from nwbridge.provenance import ALLEN_DATASET, provenance_record
    from nwbridge.schemas.checker import PASS, check_file

    nwbfile = new_file(source_script=provenance_record(ALLEN_DATASET, native_ids={}, data_revision=None),
                       source_script_file_name="nwbridge")
    AllenStimulusInterface(vbn_session.session_file).add_to_nwbfile(nwbfile)
    path = tmp_path / "sub-1_ses-1_desc-processed_behavior+ecephys.nwb"
    with NWBHDF5IO(path, "w") as io:
        io.write(nwbfile)
    report = check_file(path)
    assert report.source == "allen"
    for name in ("intervals/epochs", "intervals/natural_image_presentations", "intervals/gabor_presentations",
                 "intervals/flash_presentations", "intervals/spontaneous_presentations",
                 f"stimulus/templates/{vbn_session.image_set}"):
        result = report.result(name)
        assert result.status == PASS, (name, result.messages)


def test_optional_parts_can_be_left_out(vbn_session, roundtrip):
    nwbfile = roundtrip(AllenStimulusInterface(vbn_session.session_file), include_epochs=False,
                        include_templates=False)
    assert nwbfile.epochs is None and len(nwbfile.stimulus_template) == 0
    assert "natural_image_presentations" in nwbfile.intervals


# --- storage quirks, on an edited copy of the source file --------------------------------------

def replace_column(file, location: str, values: np.ndarray) -> None:
    attributes = dict(file[location].attrs)
    del file[location]
    values = np.asarray(values)
    dtype = h5py.string_dtype() if values.dtype.kind in "OU" else values.dtype
    file.create_dataset(location, data=values.astype(object) if values.dtype.kind == "U" else values, dtype=dtype)
    file[location].attrs.update(attributes)


def as_text_with_na(values: np.ndarray) -> np.ndarray:
    return np.array(["N/A" if np.isnan(v) else repr(float(v)) for v in values], dtype=object)


@pytest.fixture(scope="module")
def quirky(vbn_session, tmp_path_factory):
    """A copy of the session file with the other ways AllenSDK stores presentation columns: numbers
    as text with "N/A", integers as float with NaN; and the flashes numbered as block 9 (a gap)."""
    path = tmp_path_factory.mktemp("quirky") / vbn_session.session_file.name
    shutil.copy(vbn_session.session_file, path)
    with h5py.File(path, "r+") as file:
        gabor = source_table(file, "gabor")
        orientation = file[f"{gabor}/orientation"][:]
        orientation[::7] = np.nan
        replace_column(file, f"{gabor}/orientation", as_text_with_na(orientation))
        replace_column(file, f"{gabor}/spatial_frequency", as_text_with_na(file[f"{gabor}/spatial_frequency"][:]))
        images = source_table(file, "natural_image")
        since = file[f"{images}/flashes_since_change"][:].astype(np.float64)
        since[[2, 5]] = np.nan
        replace_column(file, f"{images}/flashes_since_change", since)
        replace_column(file, f"{images}/start_frame", file[f"{images}/start_frame"][:].astype(np.float64))
        flash = source_table(file, "flash")
        replace_column(file, f"{flash}/stimulus_block", np.full(file[f"{flash}/stimulus_block"].shape, 9))
    return path


@pytest.fixture(scope="module")
def quirky_converted(quirky, written):
    return written(AllenStimulusInterface(quirky))


def test_na_text_in_numeric_columns_becomes_nan(quirky_converted, vbn_raw):
    gabor = source_table(vbn_raw, "gabor")
    table = quirky_converted.intervals["gabor_presentations"]
    expected = raw_column(vbn_raw, f"{gabor}/orientation").copy()
    expected[::7] = np.nan
    np.testing.assert_array_equal(table["orientation"][:], expected)
    assert table["orientation"].data.dtype == np.float64
    # An Allen column the representation does not name, stored as text numbers: float again.
    np.testing.assert_array_equal(table["spatial_frequency"][:], raw_column(vbn_raw, f"{gabor}/spatial_frequency"))
    assert table["spatial_frequency"].data.dtype == np.float64


def test_integers_stored_as_float(quirky_converted, vbn_raw):
    images = source_table(vbn_raw, "natural_image")
    table = quirky_converted.intervals["natural_image_presentations"]
    since = np.asarray(table["flashes_since_change"].data[:])
    expected = raw_column(vbn_raw, f"{images}/flashes_since_change").copy()
    expected[[2, 5]] = -99  # Allen's "no value" for integers
    assert since.dtype.kind == "i"
    np.testing.assert_array_equal(since, expected)
    start_frame = np.asarray(table["start_frame"].data[:])
    assert start_frame.dtype.kind == "i"
    np.testing.assert_array_equal(start_frame, raw_column(vbn_raw, f"{images}/start_frame"))


def test_blocks_not_numbered_as_epochs_rows_are_renumbered(quirky_converted, vbn_raw):
    epochs = quirky_converted.epochs
    flash = quirky_converted.intervals["flash_presentations"]
    row = list(epochs["protocol"][:]).index("flash")
    assert set(flash["stimulus_block"][:]) == {row}
    assert set(flash["allen_stimulus_block"][:]) == {9}
    assert "allen_stimulus_block" in flash["stimulus_block"].description
    # The other tables keep the Allen numbers, which are their rows.
    images = quirky_converted.intervals["natural_image_presentations"]
    assert set(images["stimulus_block"][:]) == {0, 5} and "allen_stimulus_block" not in images.colnames
    assert list(epochs["protocol"][:])[5] == "task_replay"


# --- other layouts and inconsistent sources, in memory -------------------------------------------

def test_natural_images_from_several_tables_are_merged_in_time_order(monkeypatch, vbn_source, vbn_raw, roundtrip):
    location = source_table(vbn_raw, "natural_image")
    block = raw_column(vbn_raw, f"{location}/stimulus_block")
    table = vbn_source.require(location)
    passive_first = {
        "intervals/Natural_Images_replay_presentations": edited_table(
            table, name="Natural_Images_replay_presentations", rows=block == 5),
        location: edited_table(table, rows=block == 0),
    }
    use_source(monkeypatch, EditedSource(vbn_source, passive_first))
    merged = roundtrip(AllenStimulusInterface(vbn_source.path)).intervals["natural_image_presentations"]
    np.testing.assert_array_equal(merged["start_time"][:], raw_column(vbn_raw, f"{location}/start_time"))
    assert list(merged["image_name"][:]) == list(raw_column(vbn_raw, f"{location}/image_name"))
    assert "Natural_Images_replay_presentations" in merged.description


def test_block_mixing_active_and_passive_is_an_error(monkeypatch, vbn_source, vbn_raw):
    location = source_table(vbn_raw, "natural_image")
    active = raw_column(vbn_raw, f"{location}/active").copy()
    active[3] = False
    use_source(monkeypatch, EditedSource(vbn_source, {location: edited_table(vbn_source.require(location),
                                                                             active=active)}))
    with pytest.raises(SourceFileError, match="stimulus block 0 mixes active and passive") as error:
        AllenStimulusInterface(vbn_source.path).add_to_nwbfile(new_file())
    assert error.value.path == vbn_source.path


def test_block_shared_by_two_stimuli_is_an_error(monkeypatch, vbn_source, vbn_raw):
    flash = source_table(vbn_raw, "flash")
    block = np.full(vbn_raw[f"{flash}/stimulus_block"].shape, 2)  # the Gabor block's number
    use_source(monkeypatch, EditedSource(vbn_source, {flash: edited_table(vbn_source.require(flash),
                                                                          stimulus_block=block)}))
    with pytest.raises(SourceFileError, match="stimulus block 2 has presentations in .* and in"):
        AllenStimulusInterface(vbn_source.path).add_to_nwbfile(new_file())


def test_natural_images_without_active_is_an_error(monkeypatch, vbn_source, vbn_raw):
    location = source_table(vbn_raw, "natural_image")
    use_source(monkeypatch, EditedSource(vbn_source, {location: edited_table(vbn_source.require(location),
                                                                             active=None)}))
    with pytest.raises(SourceFileError, match="no 'active' column"):
        AllenStimulusInterface(vbn_source.path).add_to_nwbfile(new_file())


def test_missing_block_number_is_an_error(monkeypatch, vbn_source, vbn_raw):
    gabor = source_table(vbn_raw, "gabor")
    block = raw_column(vbn_raw, f"{gabor}/stimulus_block").astype(np.float64)
    block[4] = np.nan
    use_source(monkeypatch, EditedSource(vbn_source, {gabor: edited_table(vbn_source.require(gabor),
                                                                          stimulus_block=block)}))
    with pytest.raises(SourceFileError, match="'stimulus_block' .* has no value in row 4"):
        AllenStimulusInterface(vbn_source.path).add_to_nwbfile(new_file())


def test_missing_kind_column_is_an_error(monkeypatch, vbn_source, vbn_raw):
    gabor = source_table(vbn_raw, "gabor")
    use_source(monkeypatch, EditedSource(vbn_source, {gabor: edited_table(vbn_source.require(gabor),
                                                                          orientation=None)}))
    with pytest.raises(SourceFileError, match=r"lacks the columns \['orientation'\]"):
        AllenStimulusInterface(vbn_source.path).add_to_nwbfile(new_file())


def test_text_in_a_numeric_column_is_an_error(monkeypatch, vbn_source, vbn_raw):
    gabor = source_table(vbn_raw, "gabor")
    contrast = np.array(["0.8"] * vbn_raw[f"{gabor}/contrast"].shape[0], dtype=object)
    contrast[1] = "bright"
    use_source(monkeypatch, EditedSource(vbn_source, {gabor: edited_table(vbn_source.require(gabor),
                                                                          contrast=contrast)}))
    with pytest.raises(SourceFileError, match=r"'contrast' .* should hold numbers; found \['bright'\]"):
        AllenStimulusInterface(vbn_source.path).add_to_nwbfile(new_file())


def test_unknown_presentations_table_is_left_out_with_a_warning(monkeypatch, vbn_source, vbn_raw, roundtrip):
    flash = source_table(vbn_raw, "flash")
    odd = {flash: None, "intervals/checkerboard_presentations": edited_table(vbn_source.require(flash),
                                                                             name="checkerboard_presentations")}
    use_source(monkeypatch, EditedSource(vbn_source, odd))
    with pytest.warns(UserWarning, match="checkerboard_presentations .* not converted"):
        nwbfile = roundtrip(AllenStimulusInterface(vbn_source.path))
    assert "flash_presentations" not in nwbfile.intervals
    assert "flash" not in list(nwbfile.epochs["protocol"][:])
    # Its block is missing from epochs, so the later blocks are renumbered.
    assert set(nwbfile.intervals["natural_image_presentations"]["stimulus_block"][:]) == {0, 4}


def test_is_available(vbn_source, vbn_raw):
    assert AllenStimulusInterface.is_available(vbn_source)
    none = {f"intervals/{name}": None for name in vbn_raw["intervals"] if name.endswith("_presentations")}
    assert not AllenStimulusInterface.is_available(EditedSource(vbn_source, none))


def test_stimulus_frame_times_turn_frames_into_seconds(vbn_session, vbn_raw, roundtrip):
    """Every displayed frame's time is kept, indexed by the frame numbers the tables use."""
    from nwbridge.interfaces.allen.stimuli import AllenStimulusInterface

    nwbfile = roundtrip(AllenStimulusInterface(vbn_session.session_file))
    frames = nwbfile.stimulus["allen_stimulus_frame_times"]
    source = vbn_raw["processing/stimulus/timestamps/timestamps"][:]
    np.testing.assert_array_equal(frames.timestamps[:], source)
    np.testing.assert_array_equal(frames.data[:], np.arange(len(source)))
    # A presentation's start_frame indexes its displayed start time.
    images = nwbfile.intervals["natural_image_presentations"]
    start_frame = np.asarray(images["start_frame"][:], dtype=np.int64)
    np.testing.assert_allclose(frames.timestamps[:][start_frame], images["start_time"][:], atol=0.05)


def test_task_epoch_holds_every_trial(vbn_session, vbn_raw, roundtrip):
    """The first trial starts a display delay before its first image: the task epoch still holds it."""
    from nwbridge.interfaces.allen.stimuli import AllenStimulusInterface

    nwbfile = roundtrip(AllenStimulusInterface(vbn_session.session_file))
    epochs = nwbfile.epochs
    (task,) = np.flatnonzero(np.asarray(epochs["protocol"][:]) == "task")
    trial_starts = vbn_raw["intervals/trials/start_time"][:]
    trial_stops = vbn_raw["intervals/trials/stop_time"][:]
    assert epochs["start_time"][task] == trial_starts.min()
    assert epochs["stop_time"][task] >= trial_stops.max()
    images = nwbfile.intervals["natural_image_presentations"]
    active = ~np.asarray(images["is_passive"][:])
    assert epochs["start_time"][task] < images["start_time"][:][active].min()
