"""The IBL passive protocol: its periods and the stimuli presented in them.

After the task, IBL mice see a passive protocol in three parts: spontaneous activity (grey
screen), a sparse-noise receptive-field map, and a replay of the task's stimuli (Gabor patches,
valve clicks, go-cue tones, noise bursts) with the wheel uncoupled. The ALF files are

- ``alf/_ibl_passivePeriods.intervalsTable.csv``: start and stop of each part and of the whole;
- ``alf/_ibl_passiveGabor.table.csv``: one row per Gabor patch (``start, stop, position,
  contrast, phase``);
- ``alf/_ibl_passiveStims.table.csv``: on/off times of valve clicks, tones and noise bursts,
  one column each, NaN-padded to a common length;
- ``alf/_ibl_passiveRFM.times.npy`` and ``raw_passive_data/_iblrig_RFMapStim.raw.bin``: the time
  and the 15 x 15 pixels (uint8) of each receptive-field-map frame.

They become ``intervals/passive_periods``, ``intervals/gabor_presentations``,
``intervals/task_replay_presentations``, ``intervals/sparse_noise_presentations`` and
``stimulus/sparse_noise_frames``. ``stimulus_block`` is the row of the block in the ``epochs``
table (see :mod:`.epochs`).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from pynwb.epoch import TimeIntervals
from pynwb.image import ImageSeries

from ...errors import MissingSourceFileError, SourceFileError
from ..tables import Column, build_table
from .alf import load_npy, load_table, require_increasing
from .base import IblInterface
from .epochs import block_number, protocol_blocks, read_passive_periods

__all__ = ["IblPassiveInterface", "RFM_FRAME_SHAPE", "read_rfm_frames", "task_replay_events"]

RFM_FRAME_SHAPE = (15, 15)

PERIOD_DESCRIPTIONS = {
    "passiveProtocol": "the whole passive protocol (envelope of the three parts)",
    "spontaneousActivity": "spontaneous activity, grey screen",
    "RFM": "sparse-noise receptive-field mapping",
    "taskReplay": "task replay: Gabor patches, valve clicks, go-cue tones and noise bursts",
}
# stimulus_type -> (on column, off column, what it is) in _ibl_passiveStims.table.csv.
TASK_REPLAY_PAIRS = {
    "valve": ("valveOn", "valveOff", "water valve opening and closing, as for a reward in the task (the "
              "mouse hears the click)"),
    "tone": ("toneOn", "toneOff", "the task's go-cue tone"),
    "noise": ("noiseOn", "noiseOff", "the task's white-noise burst (its error feedback)"),
}
GABOR_COLUMNS = {
    "position": ("position", "Azimuth of the Gabor patch centre (degrees of visual angle; -35 left, +35 right, "
                 "as in the task)."),
    "contrast": ("contrast", "Michelson contrast of the Gabor patch (fraction, 0 to 1)."),
    "phase": ("phase", "Spatial phase of the Gabor grating (rad)."),
}
SHARED_DESCRIPTIONS = {
    "stimulus_block": "Row of the protocol block in the epochs table (int, no unit).",
    "is_passive": "Whether the stimulus was presented outside the task, with no response expected (bool); "
                  "always True in the IBL passive protocol.",
}


def task_replay_events(stims: pd.DataFrame, *, path: Path) -> pd.DataFrame:
    """The valve clicks, tones and noise bursts of the passive stims table, one row per event.

    Parameters
    ----------
    stims : pandas.DataFrame
        ``_ibl_passiveStims.table.csv`` as read.
    path : Path
        Its file, named in errors.

    Returns
    -------
    pandas.DataFrame
        Columns ``start_time, stop_time, stimulus_type``, sorted by start (by stop where the start
        is NaN). The NaN padding at the end of each on/off pair is removed; a pair with only one
        NaN is an event whose other edge was not detected and is kept.
    """
    frames = []
    for kind, (on_column, off_column, _) in TASK_REPLAY_PAIRS.items():
        present = [column for column in (on_column, off_column) if column in stims.columns]
        if not present:
            continue
        if len(present) == 1:
            missing = off_column if present[0] == on_column else on_column
            raise SourceFileError(path, f"has column {present[0]!r} but not {missing!r}: "
                                  f"{kind} events need both edges")
        try:
            on = stims[on_column].to_numpy(dtype=np.float64)
            off = stims[off_column].to_numpy(dtype=np.float64)
        except (TypeError, ValueError) as error:
            raise SourceFileError(path, f"{on_column}/{off_column} must be times in seconds: {error}") from error
        # The columns were padded with NaN to the length of the longest one: only the tail where
        # both edges are NaN is padding, so an interior NaN pair (an undetected event) is kept.
        defined = np.flatnonzero(np.isfinite(on) | np.isfinite(off))
        n_events = int(defined[-1]) + 1 if defined.size else 0
        frames.append(pd.DataFrame({"start_time": on[:n_events], "stop_time": off[:n_events],
                                    "stimulus_type": kind}))
    unknown = [str(column) for column in stims.columns
               if column not in {name for pair in TASK_REPLAY_PAIRS.values() for name in pair[:2]}]
    if unknown:
        warnings.warn(f"{path}: columns {unknown} are not task-replay on/off pairs nwbridge knows; they are not "
                      "converted", stacklevel=2)
    if not frames:
        return pd.DataFrame({"start_time": [], "stop_time": [], "stimulus_type": []})
    events = pd.concat(frames, ignore_index=True)
    # An event missing its onset is placed by its offset, so it sits where it happened.
    order_key = events["start_time"].fillna(events["stop_time"]).to_numpy()
    return events.iloc[np.argsort(order_key, kind="stable")].reset_index(drop=True)


def read_rfm_frames(path: Path, *, n_times: int | None = None, times_path: Path | None = None) -> np.ndarray:
    """The receptive-field-map frames of ``_iblrig_RFMapStim.raw.bin`` as uint8 (n, 15, 15).

    The file is the frames one after the other, 225 bytes each; ``frames[i, a, b]`` is byte
    ``225 * i + 15 * a + b``, the array IBL's own loader (``brainbox.io.one.load_passive_rfmap``)
    returns.

    Parameters
    ----------
    path : Path
        The ``.bin`` file.
    n_times : int, optional
        The number of frame times; a different number of frames is an error.
    times_path : Path, optional
        The file of the frame times, named in that error.
    """
    frame_size = RFM_FRAME_SHAPE[0] * RFM_FRAME_SHAPE[1]
    size = path.stat().st_size
    if size % frame_size:
        raise SourceFileError(path, f"holds {size} bytes, not a whole number of {RFM_FRAME_SHAPE[0]} x "
                              f"{RFM_FRAME_SHAPE[1]} uint8 frames ({frame_size} bytes each: {size // frame_size} "
                              f"frames and {size % frame_size} bytes left over)")
    n_frames = size // frame_size
    if n_times is not None and n_frames != n_times:
        other = times_path.name if times_path is not None else "the frame times"
        raise SourceFileError(path, f"holds {n_frames} frames but {other} has {n_times} frame times; "
                              "there must be one time per frame")
    return np.fromfile(path, dtype=np.uint8).reshape((n_frames, *RFM_FRAME_SHAPE))


class IblPassiveInterface(IblInterface):
    """The IBL passive protocol (``alf/_ibl_passive*``, ``raw_passive_data/_iblrig_RFMapStim.raw.bin``).

    Writes ``intervals/passive_periods``, and where their files exist
    ``intervals/gabor_presentations``, ``intervals/task_replay_presentations``,
    ``intervals/sparse_noise_presentations`` and ``stimulus/sparse_noise_frames``.
    """

    display_name = "IBL passive protocol"

    @classmethod
    def is_available(cls, session) -> bool:
        return session.has("passivePeriods", "intervalsTable")

    def add_to_nwbfile(self, nwbfile, metadata: dict | None = None) -> None:
        found = read_passive_periods(self.session)
        if found is None:
            raise MissingSourceFileError(self.session.session_path / "alf" / "_ibl_passivePeriods.intervalsTable.csv",
                                         "the passive protocol needs its periods table")
        periods, periods_path = found
        blocks = protocol_blocks(self.session)
        nwbfile.add_time_intervals(self._passive_periods(periods, path=periods_path))

        gabor_path = self.session.path("passiveGabor", "table", required=False)
        if gabor_path is not None:
            block = block_number(blocks, protocol="task_replay", source=periods_path,
                                 needed_for=f"the Gabor patches of {gabor_path.name}")
            nwbfile.add_time_intervals(self._gabor_presentations(gabor_path, block=block))

        stims_path = self.session.path("passiveStims", "table", required=False)
        if stims_path is not None:
            block = block_number(blocks, protocol="task_replay", source=periods_path,
                                 needed_for=f"the task-replay events of {stims_path.name}")
            nwbfile.add_time_intervals(self._task_replay_presentations(stims_path, block=block))

        times_path = self.session.path("passiveRFM", "times", required=False)
        frames_path = self.session.path("RFMapStim", "raw", collection="raw_passive_data", required=False)
        if times_path is not None:
            block = block_number(blocks, protocol="receptive_field_mapping", source=periods_path,
                                 needed_for=f"the receptive-field-map frames of {times_path.name}")
            self._add_sparse_noise(nwbfile, times_path=times_path, frames_path=frames_path, periods=periods,
                                   periods_path=periods_path, block=block)
        elif frames_path is not None:
            warnings.warn(f"{frames_path}: receptive-field-map frames without their times "
                          "(alf/_ibl_passiveRFM.times.npy is absent); they are not converted", stacklevel=2)

    @staticmethod
    def _passive_periods(periods: pd.DataFrame, *, path: Path) -> TimeIntervals:
        names = [str(name) for name in periods.columns]
        described = "; ".join(f"{name}: {PERIOD_DESCRIPTIONS[name]}" for name in names if name in PERIOD_DESCRIPTIONS)
        return build_table(
            TimeIntervals,
            name="passive_periods",
            description=(f"The periods of the IBL passive protocol, one row per column of {path.name}, in its "
                         f"order, so the source table is kept whole ({described})."),
            columns=[
                Column("start_time", "Start of the period (s, session clock).",
                       periods.loc["start"].to_numpy(dtype=np.float64)),
                Column("stop_time", "End of the period (s, session clock).",
                       periods.loc["stop"].to_numpy(dtype=np.float64)),
                Column("period", "Name of the period: its column in the ALF passive periods table (no unit).",
                       np.array(names, dtype=object)),
            ],
        )

    @staticmethod
    def _gabor_presentations(path: Path, *, block: int) -> TimeIntervals:
        table = load_table(path)
        missing = [name for name in ("start", "stop", *GABOR_COLUMNS) if name not in table.columns]
        if missing:
            raise SourceFileError(path, f"missing columns {missing}; expected start, stop, position, contrast, phase")
        n = len(table)
        columns = [
            Column("start_time", "Onset of the Gabor patch (s, session clock).",
                   table["start"].to_numpy(dtype=np.float64)),
            Column("stop_time", "Offset of the Gabor patch (s, session clock).",
                   table["stop"].to_numpy(dtype=np.float64)),
            Column("stimulus_type", "Kind of stimulus: 'gabor' (no unit).", np.full(n, "gabor", dtype=object)),
            Column("stimulus_block", SHARED_DESCRIPTIONS["stimulus_block"], np.full(n, block, dtype=np.int64)),
            Column("is_passive", SHARED_DESCRIPTIONS["is_passive"], np.ones(n, dtype=bool)),
        ]
        for source, (name, description) in GABOR_COLUMNS.items():
            columns.append(Column(name, description, table[source].to_numpy(dtype=np.float64)))
        # Columns a newer extractor may add are kept under their ALF name rather than dropped.
        for extra in [c for c in table.columns if c not in ("start", "stop", *GABOR_COLUMNS)]:
            values = table[extra].to_numpy()
            if values.dtype.kind in "OUT":
                values = values.astype(str).astype(object)
            columns.append(Column(f"ibl_{extra}", f"Column '{extra}' of {path.name}, as extracted (unit as in the "
                                  "source).", values))
        return build_table(
            TimeIntervals,
            name="gabor_presentations",
            description=(f"Gabor patches of the IBL passive task replay ({path.name}), one row per patch, in the "
                         "source's order: the task's stimulus shown without the wheel being coupled to it."),
            columns=columns,
        )

    @staticmethod
    def _task_replay_presentations(path: Path, *, block: int) -> TimeIntervals:
        events = task_replay_events(load_table(path), path=path)
        n = len(events)
        kinds = "; ".join(f"'{kind}': {description} ({on} to {off})"
                          for kind, (on, off, description) in TASK_REPLAY_PAIRS.items())
        return build_table(
            TimeIntervals,
            name="task_replay_presentations",
            description=(
                f"Valve clicks, go-cue tones and noise bursts of the IBL passive task replay ({path.name}), one row "
                f"per event, sorted by start time. {kinds}. The source columns are padded with NaN to a common "
                "length; that padding is not an event and was removed. A NaN start_time or stop_time is an event "
                "whose other edge the source has but this one was not detected; such rows are kept (and sorted by "
                "their stop time)."
            ),
            columns=[
                Column("start_time", "Onset of the event (s, session clock); NaN if not detected.",
                       events["start_time"].to_numpy(dtype=np.float64)),
                Column("stop_time", "Offset of the event (s, session clock); NaN if not detected.",
                       events["stop_time"].to_numpy(dtype=np.float64)),
                Column("stimulus_type", "Kind of stimulus: 'valve', 'tone' or 'noise' (no unit).",
                       events["stimulus_type"].to_numpy().astype(str).astype(object)),
                Column("stimulus_block", SHARED_DESCRIPTIONS["stimulus_block"], np.full(n, block, dtype=np.int64)),
                Column("is_passive", SHARED_DESCRIPTIONS["is_passive"], np.ones(n, dtype=bool)),
            ],
        )

    @staticmethod
    def _add_sparse_noise(nwbfile, *, times_path: Path, frames_path: Path | None, periods: pd.DataFrame,
                          periods_path: Path, block: int) -> None:
        times = np.asarray(load_npy(times_path), dtype=np.float64)
        require_increasing(times, times_path)
        n = len(times)
        rfm_stop = float(periods.at["stop", "RFM"])
        if n and rfm_stop < times[-1]:
            raise SourceFileError(periods_path, f"the RFM period stops at {rfm_stop!r} s, before the last "
                                  f"receptive-field-map frame ({times[-1]!r} s in {times_path.name})")
        # The last frame has no successor: it stays on screen until the mapping ends.
        stops = np.append(times[1:], rfm_stop) if n else times
        columns = [
            Column("start_time", "Onset of the frame (s, session clock).", times),
            Column("stop_time", "Onset of the next frame; for the last frame, the end of the RFM period "
                   "(s, session clock).", stops),
            Column("stimulus_type", "Kind of stimulus: 'sparse_noise' (no unit).",
                   np.full(n, "sparse_noise", dtype=object)),
            Column("stimulus_block", SHARED_DESCRIPTIONS["stimulus_block"], np.full(n, block, dtype=np.int64)),
            Column("is_passive", SHARED_DESCRIPTIONS["is_passive"], np.ones(n, dtype=bool)),
        ]
        if frames_path is not None:
            frames = read_rfm_frames(frames_path, n_times=n, times_path=times_path)
            columns.append(Column("frame_index", "Row of this frame in stimulus/sparse_noise_frames (index, no "
                                  "unit).", np.arange(n, dtype=np.int64)))
            nwbfile.add_stimulus(ImageSeries(
                name="sparse_noise_frames",
                description=(
                    f"Frames of the IBL sparse-noise receptive-field map ({frames_path.name}), 15 x 15 squares "
                    "each, as IBL's loader returns them. Pixel values (uint8): 0 black, 128 grey, 255 white. "
                    f"Timestamps: onset of each frame ({times_path.name})."
                ),
                data=frames,
                unit="n.a.",
                format="raw",
                timestamps=times,
            ))
            frames_note = " frame_index is the frame's row in stimulus/sparse_noise_frames."
        else:
            warnings.warn(f"{times_path}: receptive-field-map times without their frames "
                          "(raw_passive_data/_iblrig_RFMapStim.raw.bin is absent); only the times are converted",
                          stacklevel=3)
            frames_note = " The frames file (raw_passive_data/_iblrig_RFMapStim.raw.bin) was absent."
        nwbfile.add_time_intervals(build_table(
            TimeIntervals,
            name="sparse_noise_presentations",
            description=(
                f"Frames of the IBL sparse-noise receptive-field map, one row per frame ({times_path.name}). A "
                "frame lasts until the next frame's onset; the last frame has no successor and is taken to "
                f"last until the end of the RFM period in {periods_path.name}." + frames_note
            ),
            columns=columns,
        ))
