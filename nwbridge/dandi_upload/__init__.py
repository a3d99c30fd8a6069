"""The last step of a conversion: a dandiset folder, validated, on the DANDI archive.

Three steps, each built on dandi-cli's Python API:

* :func:`organize_dandiset` gives every NWB file its DANDI name and place, moves the videos it
  references next to it and rewrites ``external_file`` (dandi-cli's organize machinery);
* :func:`validate_dandiset` runs dandi-cli's validation and nwbridge's representation check and
  reports one row per file;
* :func:`upload_dandiset` validates, refuses on errors, and uploads with dandi-cli.

``nwbridge dandi organize|validate|upload DANDISET_DIR`` are these functions on the command line,
and ``nwbridge release ... --upload DANDISET_ID`` runs them as a stage after conversion.
"""

from .dandiset_folder import DANDISET_FILE, DandiWorkflowError, ensure_dandiset_file, find_nwb_files, read_dandiset_id
from .organize import OrganizedFile, OrganizeReport, organize_dandiset
from .upload import (
    MissingApiKeyError,
    PlannedAsset,
    UploadRefusedError,
    UploadReport,
    api_key_variable,
    format_upload_plan,
    plan_upload,
    require_api_key,
    resolve_instance,
    upload_assets,
    upload_dandiset,
)
from .validation import DandisetValidation, FileValidation, validate_dandiset

__all__ = [
    "DANDISET_FILE",
    "DandiWorkflowError",
    "ensure_dandiset_file",
    "find_nwb_files",
    "read_dandiset_id",
    "OrganizedFile",
    "OrganizeReport",
    "organize_dandiset",
    "DandisetValidation",
    "FileValidation",
    "validate_dandiset",
    "MissingApiKeyError",
    "PlannedAsset",
    "UploadRefusedError",
    "UploadReport",
    "api_key_variable",
    "format_upload_plan",
    "plan_upload",
    "require_api_key",
    "resolve_instance",
    "upload_assets",
    "upload_dandiset",
]
