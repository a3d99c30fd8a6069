"""Protocol blocks of an IBL session (task, spontaneous activity, receptive-field map, task replay)
as the NWB ``epochs`` table.

A session is a sequence of protocol blocks: the task (its extent is that of the trials) and the
three parts of the passive protocol that usually follows it, whose extents the passive periods
table (``alf/_ibl_passivePeriods.intervalsTable.csv``) gives.

The ``stimulus_block`` number
-----------------------------
The row index of a block in the ``epochs`` table, with blocks sorted by start time, is that
block's ``stimulus_block`` number in every ``<kind>_presentations`` table. The definition does
not depend on the lab: the Allen Visual Behavior sessions number their stimulus blocks in time
order too (0 active natural images, 1 grey screen, 2 receptive-field gabors, ...), and their
epochs rows come in the same order, so ``epochs[stimulus_block]`` finds the protocol of any
presentation in either source. :func:`protocol_blocks` is the single place where the IBL
numbering is computed; :mod:`.passive` uses it so the two can never disagree.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from pynwb.epoch import TimeIntervals

from ...errors import SourceFileError
from ..tables import Column, build_table
from .alf import AlfSession, load_table
from .base import IblInterface

__all__ = ["IblEpochsInterface", "PASSIVE_PERIOD_PROTOCOLS", "block_number", "protocol_blocks",
           "read_passive_periods"]

# Column of the passive periods table -> protocol of the representation. ``passiveProtocol`` is the
# envelope of the three and is not a block of its own.
PASSIVE_PERIOD_PROTOCOLS = {
    "spontaneousActivity": "spontaneous",
    "RFM": "receptive_field_mapping",
    "taskReplay": "task_replay",
}
PROTOCOL_DESCRIPTIONS = {
    "task": "the visual decision task (from the first trial start to the last trial stop)",
    "spontaneous": "spontaneous activity in front of a grey screen (passive periods 'spontaneousActivity')",
    "receptive_field_mapping": "sparse-noise receptive-field map (passive periods 'RFM')",
    "task_replay": "replay of the task's Gabor patches, valve clicks, go-cue tones and noise bursts "
                   "without the wheel being coupled (passive periods 'taskReplay')",
}


def read_passive_periods(session: AlfSession) -> tuple[pd.DataFrame, Path] | None:
    """The passive periods table, one column per period, rows labelled ``start`` and ``stop``.

    Parameters
    ----------
    session : AlfSession
        The session.

    Returns
    -------
    (pandas.DataFrame, Path) or None
        The table, indexed by ``["start", "stop"]`` with float columns in the file's order, and
        the file; ``None`` when the session has no passive periods table.
    """
    path = session.path("passivePeriods", "intervalsTable", required=False)
    if path is None:
        return None
    raw = load_table(path)
    if raw.shape[1] < 2:
        raise SourceFileError(path, f"expected a row-label column and one column per period, found "
                              f"{raw.shape[1]} column(s)")
    # The row labels are the unnamed index pandas wrote; its header is whatever the writer used
    # (usually empty, read back as 'Unnamed: 0'), so the labels themselves are what is checked.
    labels = raw.iloc[:, 0].astype(str).str.strip().tolist()
    if sorted(labels) != ["start", "stop"]:
        raise SourceFileError(path, f"expected two rows labelled 'start' and 'stop' in the first (unnamed) "
                              f"column, found labels {labels}")
    table = raw.iloc[:, 1:].set_axis(labels, axis=0).loc[["start", "stop"]]
    try:
        table = table.astype(np.float64)
    except (TypeError, ValueError) as error:
        raise SourceFileError(path, f"period bounds must be numbers (seconds): {error}") from error
    backwards = [str(name) for name in table.columns if table.at["stop", name] < table.at["start", name]]
    if backwards:
        raise SourceFileError(path, f"periods stop before they start: {', '.join(backwards)}")
    return table, path


def protocol_blocks(session: AlfSession) -> pd.DataFrame:
    """The protocol blocks of a session in time order.

    The row index of a block in the returned table (and in the NWB ``epochs`` table written from
    it) is its ``stimulus_block`` number.

    Parameters
    ----------
    session : AlfSession
        The session.

    Returns
    -------
    pandas.DataFrame
        Columns ``protocol, start_time, stop_time`` (s), sorted by ``start_time``, index 0..n-1.
        ``task`` spans the trials; ``spontaneous``, ``receptive_field_mapping`` and ``task_replay``
        come from the passive periods table. A block whose source is absent (or whose bounds are
        NaN) is absent.
    """
    rows = []
    if session.has("trials"):
        attributes, _ = session.load_object("trials")
        intervals = attributes.get("intervals")
        if intervals is not None:
            intervals = np.asarray(intervals, dtype=np.float64)
            # A trial whose start or stop was not detected is NaN; the task still spans the rest.
            if intervals.ndim == 2 and intervals.shape[1] == 2 and np.isfinite(intervals).any(axis=0).all():
                rows.append(("task", np.nanmin(intervals[:, 0]), np.nanmax(intervals[:, 1])))
    periods = read_passive_periods(session)
    if periods is not None:
        table, _ = periods
        for column, protocol in PASSIVE_PERIOD_PROTOCOLS.items():
            if column in table.columns:
                start, stop = table.at["start", column], table.at["stop", column]
                if np.isfinite(start) and np.isfinite(stop):
                    rows.append((protocol, float(start), float(stop)))
    blocks = pd.DataFrame(rows, columns=["protocol", "start_time", "stop_time"])
    return blocks.sort_values("start_time", kind="stable").reset_index(drop=True)


def block_number(blocks: pd.DataFrame, *, protocol: str, source: Path, needed_for: str) -> int:
    """The ``stimulus_block`` number of the block of one protocol.

    Parameters
    ----------
    blocks : pandas.DataFrame
        :func:`protocol_blocks` of the session.
    protocol : str
        The protocol, e.g. ``"task_replay"``.
    source : Path
        The file that should have defined the block (the passive periods table), named in the error.
    needed_for : str
        What needs the block, for the error message.

    Returns
    -------
    int
        The block's row in ``blocks`` (and in the NWB ``epochs`` table).
    """
    matches = np.flatnonzero(blocks["protocol"].to_numpy() == protocol)
    if matches.size != 1:
        raise SourceFileError(source, f"{needed_for} need the '{protocol}' protocol block, but the session has "
                              f"{matches.size} such blocks (blocks found: {list(blocks['protocol'])})")
    return int(matches[0])


class IblEpochsInterface(IblInterface):
    """The protocol blocks of an IBL session as the NWB ``epochs`` table.

    Writes ``epochs`` with columns ``start_time``, ``stop_time`` (s) and ``protocol`` (``task``,
    ``spontaneous``, ``receptive_field_mapping``, ``task_replay``), one row per block of
    :func:`protocol_blocks`. The row index of a block is its ``stimulus_block`` number in every
    ``<kind>_presentations`` table, for the IBL and the Allen sources alike.
    """

    display_name = "IBL protocol blocks (epochs)"

    @classmethod
    def is_available(cls, session) -> bool:
        return session.has("trials") or session.has("passivePeriods", "intervalsTable")

    def add_to_nwbfile(self, nwbfile, metadata: dict | None = None) -> None:
        blocks = protocol_blocks(self.session)
        if blocks.empty:
            return
        protocols = blocks["protocol"].to_numpy()
        described = "; ".join(f"{name}: {PROTOCOL_DESCRIPTIONS[name]}" for name in dict.fromkeys(protocols))
        nwbfile.epochs = build_table(
            TimeIntervals,
            name="epochs",
            description=(
                "Protocol blocks of the session in time order. The row index of a block is its "
                "stimulus_block number in every <kind>_presentations table. " + described + "."
            ),
            columns=[
                Column("start_time", "Start of the protocol block (s, session clock).",
                       blocks["start_time"].to_numpy(dtype=np.float64)),
                Column("stop_time", "End of the protocol block (s, session clock).",
                       blocks["stop_time"].to_numpy(dtype=np.float64)),
                Column("protocol", "Protocol of the block: 'task', 'spontaneous', 'receptive_field_mapping' "
                       "or 'task_replay' (no unit).", protocols.astype(str).astype(object)),
            ],
        )
