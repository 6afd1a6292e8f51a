"""lm-evaluation-harness output folders as qtalign runs: task tables, the folder's files, the reader."""

from qtalign.runs.lmeval.folder import TESTED_VERSIONS, is_lmeval_folder
from qtalign.runs.lmeval.read import groups_in, load_lmeval
from qtalign.runs.lmeval.tables import GROUPS, Group, find_group

__all__ = ["GROUPS", "TESTED_VERSIONS", "Group", "find_group", "groups_in", "is_lmeval_folder", "load_lmeval"]
