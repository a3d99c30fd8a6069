"""The upload stage of a release: organize the finished files, validate each, send them to DANDI.

It runs after the conversion stage, in the driver, and is throttled on its own: a few files go
up at once (``jobs``) whatever the number of conversion workers, so the archive and the network
see a steady load. Every asset's outcome is recorded in the manifest's ``uploads`` table; a re-run
skips the assets recorded as uploaded whose file has not changed since, so nothing is sent twice.
A file whose validation finds errors is refused and recorded so; the other files go on.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from .manifest import Manifest

__all__ = ["UploadStageReport", "check_upload_target", "upload_release"]


@dataclass
class UploadStageReport:
    """What the upload stage did.

    Attributes
    ----------
    dandiset_id : str
    instance : DandiInstance
    uploaded : list of str
        Asset paths sent in this run.
    already : list of str
        Asset paths recorded as uploaded by an earlier run, unchanged since.
    refused : list of (str, str)
        Asset paths whose validation found errors, and the first error.
    failed : list of (str, str)
        Asset paths whose upload failed, and why (including files organize could not place).
    """

    dandiset_id: str
    instance: object
    uploaded: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.refused and not self.failed

    def format(self) -> str:
        lines = [f"Upload to dandiset {self.dandiset_id} on {self.instance.name} ({self.instance.api})",
                 f"  uploaded: {len(self.uploaded)}, already uploaded: {len(self.already)}, "
                 f"refused by validation: {len(self.refused)}, failed: {len(self.failed)}"]
        lines += [f"  REFUSED {path}: {why}" for path, why in self.refused]
        lines += [f"  FAILED {path}: {why}" for path, why in self.failed]
        return "\n".join(lines)


def check_upload_target(dandiset_id: str, instance: str):
    """Check, before any conversion, that an upload could start: a valid identifier and an API key.

    Returns
    -------
    DandiInstance

    Raises
    ------
    DandiWorkflowError, MissingApiKeyError
    """
    import re

    from dandi.consts import dandiset_identifier_regex

    from ..dandi_upload import DandiWorkflowError, require_api_key, resolve_instance

    if not re.match(dandiset_identifier_regex, str(dandiset_id)):
        raise DandiWorkflowError(f"{dandiset_id!r} is not a dandiset identifier (six digits, e.g. 000409)")
    resolved = resolve_instance(instance)
    require_api_key(resolved)
    return resolved


def upload_release(output_dir: str | Path, dandiset_id: str, *, instance: str = "dandi", jobs: int = 2,
                   existing: str = "skip", jobs_per_file: int | None = None, validation_jobs: int = 1,
                   progress: bool = True) -> UploadStageReport:
    """Organize, validate and upload the finished files of the release in ``output_dir``.

    Parameters
    ----------
    output_dir : str or Path
        The release's dandiset folder.
    dandiset_id : str
        The dandiset to upload to (``dandiset.yaml`` is written if absent).
    instance : str, default: "dandi"
    jobs : int, default: 2
        Files uploaded at once.
    existing : str, default: "skip"
        What to do with an asset the archive already has (dandi-cli's ``--existing``).
    jobs_per_file : int, optional
        Parts of one file uploaded at once.
    validation_jobs : int, default: 1
    progress : bool

    Returns
    -------
    UploadStageReport
    """
    from ..dandi_upload import (
        DandiWorkflowError,
        ensure_dandiset_file,
        organize_dandiset,
        plan_upload,
        upload_assets,
        validate_dandiset,
    )

    output_dir = Path(output_dir).absolute()
    resolved = check_upload_target(dandiset_id, instance)
    ensure_dandiset_file(output_dir, dandiset_id)
    report = UploadStageReport(dandiset_id=dandiset_id, instance=resolved)
    organized = organize_dandiset(output_dir, progress=progress)
    report.failed += [(str(path), f"not organized: {why}") for path, why in organized.failed]
    assets = plan_upload(output_dir)
    with Manifest.in_folder(output_dir) as manifest:
        to_send = []
        for asset in assets:
            record = manifest.upload_record(resolved.api, dandiset_id, asset.path)
            if record is not None and record.matches(asset.filepath):
                report.already.append(asset.path)
            else:
                to_send.append(asset)
        if not to_send:
            return report
        validation = validate_dandiset(output_dir, paths=[asset.filepath for asset in to_send], jobs=validation_jobs,
                                       progress=progress)
        verdicts = {item.path: item for item in validation.files}
        accepted = []
        for asset in to_send:
            verdict = verdicts.get(asset.path)
            if verdict is not None and not verdict.ok:
                first = verdict.errors[0]
                why = f"{len(verdict.errors)} validation error(s), first: {first.code}: {first.text}"
                manifest.record_upload(resolved.api, dandiset_id, asset.path, status="refused",
                                       filepath=asset.filepath, error=why)
                report.refused.append((asset.path, why))
            else:
                accepted.append(asset)

        def send(asset):
            upload_assets([asset.filepath], instance=resolved, existing=existing, jobs=1, jobs_per_file=jobs_per_file)

        bar = tqdm(total=sum(asset.size for asset in accepted), desc="uploading", unit="B", unit_scale=True,
                   disable=not progress)
        with bar, ThreadPoolExecutor(max_workers=jobs) as pool:
            futures = {pool.submit(send, asset): asset for asset in accepted}
            # Results are recorded here, in the driver's thread: the manifest has one writer.
            for future in as_completed(futures):
                asset = futures[future]
                try:
                    future.result()
                except DandiWorkflowError as error:
                    manifest.record_upload(resolved.api, dandiset_id, asset.path, status="failed",
                                           filepath=asset.filepath, error=str(error))
                    report.failed.append((asset.path, str(error)))
                else:
                    manifest.record_upload(resolved.api, dandiset_id, asset.path, status="uploaded",
                                           filepath=asset.filepath)
                    report.uploaded.append(asset.path)
                bar.update(asset.size)
    return report
