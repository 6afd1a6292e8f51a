"""Run folders' plumbing: atomic writes and crash-safe JSONL (io), hashes, folder claims and locks, run records."""

from qtalign.store.claims import (
    LOCK_NAME,
    _held,  # noqa: F401  (the locks this process holds; the fault tests look at them)
    claim_out,
    claim_out_file,
    folder_locks,
    hold_folder,
    lock_holder,
    missing_folders,
    release_folders,
    remove_empty_folders,
)
from qtalign.store.hashing import sha256_file, sha256_json
from qtalign.store.io import (
    FAULT_HINT,
    JsonlWriter,
    OutputError,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    current_umask,
    library_write_error,
    os_error_cause,
    os_error_line,
    output_errors,
    read_json_object,
    read_jsonl_rows,
)
from qtalign.store.record import RESUME_HINT, RunFolder, describe_changes, flag_name, open_run

__all__ = [
    "FAULT_HINT", "LOCK_NAME", "RESUME_HINT", "JsonlWriter", "OutputError", "RunFolder", "atomic_write_bytes",
    "atomic_write_json", "atomic_write_text", "claim_out", "claim_out_file", "current_umask",
    "describe_changes", "flag_name", "folder_locks", "hold_folder", "library_write_error", "lock_holder",
    "missing_folders", "open_run", "os_error_cause", "os_error_line", "output_errors", "read_json_object",
    "read_jsonl_rows", "release_folders", "remove_empty_folders", "sha256_file", "sha256_json",
]
