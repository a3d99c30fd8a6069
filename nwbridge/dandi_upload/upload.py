"""Uploading a dandiset folder with dandi-cli, after a validation that blocks a bad upload.

The order is chosen so that a mistake costs seconds, not hours: the instance and the API key are
checked first (no network needed), then every asset is validated, and only then does dandi-cli's
``upload`` contact the archive. dandi-cli's own validation inside ``upload`` is not run a second
time: :func:`validate_dandiset` has just run the same validators on the same files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

from ..summary import human_size
from .dandiset_folder import DandiWorkflowError, read_dandiset_id
from .validation import DandisetValidation, validate_dandiset

__all__ = ["EXISTING_MODES", "MissingApiKeyError", "UploadRefusedError", "PlannedAsset", "UploadReport",
           "resolve_instance", "api_key_variable", "require_api_key", "plan_upload", "format_upload_plan",
           "upload_assets", "upload_dandiset"]

# dandi-cli's choices for an asset the archive already has (``dandi upload --existing``).
EXISTING_MODES = ("skip", "refresh", "overwrite", "force", "error")


class MissingApiKeyError(DandiWorkflowError):
    """The environment variable dandi-cli reads the API key from is not set."""

    def __init__(self, variable: str, instance):
        self.variable = variable
        super().__init__(
            f"no API key for {instance.name} ({instance.api}): set the environment variable {variable} to your key "
            f"(log in at {instance.gui or instance.api}, then your profile's API key), e.g.\n"
            f"  export {variable}=<your key>")


class UploadRefusedError(DandiWorkflowError):
    """Validation found errors: nothing was uploaded."""

    def __init__(self, validation: DandisetValidation):
        self.validation = validation
        errors = validation.errors
        shown = "\n".join(f"  {path}: {message.severity} {message.code}: {message.text}"
                          for path, message in errors[:20])
        more = f"\n  ... and {len(errors) - 20} more" if len(errors) > 20 else ""
        super().__init__(f"upload refused: validation found {len(errors)} error(s); nothing was uploaded. "
                         f"Fix them, then run again (see `nwbridge dandi validate {validation.dandiset}`):\n"
                         f"{shown}{more}")


@dataclass(frozen=True)
class PlannedAsset:
    """One file an upload would send.

    Attributes
    ----------
    path : str
        The asset's path in the dandiset (where it will be on the archive).
    filepath : Path
        The local file.
    size : int
        Bytes.
    """

    path: str
    filepath: Path
    size: int


@dataclass
class UploadReport:
    """What :func:`upload_dandiset` did (or, in a dry run, would do)."""

    dandiset_id: str
    instance: object
    assets: list[PlannedAsset]
    validation: DandisetValidation
    dry_run: bool
    api_key_variable: str
    api_key_set: bool
    uploaded: bool = False
    text: str = ""
    existing: str = "skip"
    failures: list[str] = field(default_factory=list)


def resolve_instance(instance: str):
    """dandi-cli's ``DandiInstance`` for a name (``dandi``, ``dandi-sandbox``) or a URL.

    Known instances are resolved without the network; an unknown URL is asked for its server
    information, as dandi-cli does.
    """
    from dandi.consts import known_instances, known_instances_rev

    if instance in known_instances:
        return known_instances[instance]
    if instance.lower().startswith(("http://", "https://")):
        url = instance.rstrip("/")
        if url in known_instances_rev:
            return known_instances[known_instances_rev[url]]
        from dandi.utils import get_instance

        try:
            return get_instance(url)
        except Exception as error:  # noqa: BLE001 - any failure means the URL cannot be used
            raise DandiWorkflowError(f"{url} is not a known DANDI instance and its server information could not "
                                     f"be read ({type(error).__name__}: {error})") from error
    raise DandiWorkflowError(f"unknown DANDI instance {instance!r}: use one of {', '.join(sorted(known_instances))} "
                             "or the instance's URL")


def api_key_variable(instance) -> str:
    """The environment variable dandi-cli reads this instance's API key from (``DANDI_API_KEY``, ...).

    Asked of dandi-cli's own client class, without building a client (building one checks for a
    newer dandi-cli over the network).
    """
    from dandi.dandiapi import DandiAPIClient

    return DandiAPIClient.api_key_env_var.fget(SimpleNamespace(dandi_instance=instance))


def require_api_key(instance) -> str:
    """The variable holding the instance's API key; :class:`MissingApiKeyError` when it is not set.

    dandi-cli would otherwise fall back to the keyring and then prompt, which hangs an unattended
    release; nwbridge asks for the variable instead.
    """
    variable = api_key_variable(instance)
    if not os.environ.get(variable):
        raise MissingApiKeyError(variable, instance)
    return variable


def plan_upload(dandiset_dir: str | Path, *, paths=None) -> list[PlannedAsset]:
    """The assets dandi-cli would upload from ``dandiset_dir`` (NWB files, videos), by asset path."""
    from dandi.files import DandisetMetadataFile, find_dandi_files

    dandiset = Path(dandiset_dir).absolute()
    roots = [Path(path).absolute() for path in paths] if paths else [dandiset]
    assets = {}
    for root in roots:
        for item in find_dandi_files(root, dandiset_path=dandiset, allow_all=False):
            if isinstance(item, DandisetMetadataFile):
                continue  # edited on the archive, never uploaded (as dandi-cli does by default)
            assets[item.path] = PlannedAsset(path=item.path, filepath=item.filepath, size=item.filepath.stat().st_size)
    return [assets[path] for path in sorted(assets)]


def format_upload_plan(assets: list[PlannedAsset], *, dandiset_dir: str | Path, dandiset_id: str, instance,
                       existing: str, api_key_variable: str, api_key_set: bool) -> str:
    """The dry run's listing: target, every asset with its size and archive path, the total."""
    lines = ["Dry run: nothing is uploaded.",
             f"From: {Path(dandiset_dir).absolute()}",
             f"To: dandiset {dandiset_id} (draft) on {instance.name} ({instance.api})",
             f"API key: {api_key_variable} is {'set' if api_key_set else 'NOT set (a real upload would stop here)'}",
             f"Assets the archive already has: {existing}"]
    sizes = [human_size(asset.size) for asset in assets]
    width = max([len("size"), *map(len, sizes)])
    lines.append(f"  {'size'.rjust(width)}  archive path")
    for asset, size in zip(assets, sizes):
        lines.append(f"  {size.rjust(width)}  dandi://{instance.name}/{dandiset_id}@draft/{asset.path}")
    lines.append(f"{len(assets)} asset(s), {human_size(sum(asset.size for asset in assets))}")
    return "\n".join(lines)


def upload_assets(filepaths: list[Path], *, instance, existing: str = "skip", jobs: int | None = None,
                  jobs_per_file: int | None = None) -> None:
    """Send files of one dandiset folder to the archive with dandi-cli (no validation: done before).

    Raises
    ------
    DandiWorkflowError
        dandi-cli failed; the message names the instance and dandi-cli's error.
    """
    from dandi.upload import UploadExisting, UploadValidation, upload

    if existing not in EXISTING_MODES:
        raise ValueError(f"existing must be one of {EXISTING_MODES}, not {existing!r}")
    try:
        upload([str(path) for path in filepaths], existing=UploadExisting(existing),
               validation=UploadValidation.SKIP, dandi_instance=instance, jobs=jobs, jobs_per_file=jobs_per_file)
    except Exception as error:  # noqa: BLE001 - every dandi-cli failure is reported the same way
        raise DandiWorkflowError(f"upload to {instance.name} ({instance.api}) failed: {type(error).__name__}: "
                                 f"{error}") from error


def upload_dandiset(dandiset_dir: str | Path, *, instance: str = "dandi", existing: str = "skip",
                    jobs: int | None = None, jobs_per_file: int | None = None, dry_run: bool = False,
                    paths=None, validation_jobs: int = 1, progress: bool = False) -> UploadReport:
    """Validate a dandiset folder and upload it with dandi-cli; refuse if validation finds errors.

    Parameters
    ----------
    dandiset_dir : str or Path
        The dandiset folder, with ``dandiset.yaml`` naming the dandiset.
    instance : str, default: "dandi"
        ``dandi``, ``dandi-sandbox`` or an instance's URL.
    existing : {"skip", "refresh", "overwrite", "force", "error"}
        What to do with an asset the archive already has (dandi-cli's ``--existing``); by default
        it is skipped.
    jobs, jobs_per_file : int, optional
        Files uploaded at once, and parts of one file uploaded at once (dandi-cli's defaults).
    dry_run : bool
        Validate and list what would be uploaded; contact nothing.
    paths : list, optional
        Upload only these files or folders of the dandiset.
    validation_jobs : int, default: 1
        Files validated at once.
    progress : bool

    Returns
    -------
    UploadReport

    Raises
    ------
    MissingApiKeyError
        Not a dry run and the API key variable is not set (checked before anything else is done).
    UploadRefusedError
        Validation found errors (not in a dry run, whose report says so instead).
    DandiWorkflowError
        No ``dandiset.yaml``, an unknown instance, or dandi-cli's upload failed.
    """
    if existing not in EXISTING_MODES:
        raise ValueError(f"existing must be one of {EXISTING_MODES}, not {existing!r}")
    dandiset = Path(dandiset_dir).absolute()
    dandiset_id = read_dandiset_id(dandiset)
    if dandiset_id is None:
        raise DandiWorkflowError(f"{dandiset}: no dandiset.yaml naming the dandiset; run `nwbridge dandi organize "
                                 f"{dandiset} --dandiset-id ID` first")
    resolved = resolve_instance(instance)
    variable = api_key_variable(resolved)
    if not dry_run:
        require_api_key(resolved)
    assets = plan_upload(dandiset, paths=paths)
    validation = validate_dandiset(dandiset, paths=paths, jobs=validation_jobs, progress=progress)
    report = UploadReport(dandiset_id=dandiset_id, instance=resolved, assets=assets, validation=validation,
                          dry_run=dry_run, api_key_variable=variable, api_key_set=bool(os.environ.get(variable)),
                          existing=existing)
    if dry_run:
        report.text = format_upload_plan(assets, dandiset_dir=dandiset, dandiset_id=dandiset_id, instance=resolved,
                                         existing=existing, api_key_variable=variable,
                                         api_key_set=report.api_key_set)
        if not validation.ok:
            report.text += (f"\nValidation found {len(validation.errors)} error(s): a real upload would be refused "
                            "(see `nwbridge dandi validate`).")
        return report
    if not validation.ok:
        raise UploadRefusedError(validation)
    if not assets:
        report.text = "nothing to upload"
        return report
    upload_assets([asset.filepath for asset in assets], instance=resolved, existing=existing, jobs=jobs,
                  jobs_per_file=jobs_per_file)
    report.uploaded = True
    report.text = (f"uploaded {len(assets)} asset(s), {human_size(sum(asset.size for asset in assets))}, to dandiset "
                   f"{dandiset_id} on {resolved.name} (assets the archive had: {existing})")
    return report
