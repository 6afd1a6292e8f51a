"""The packaged table of the paper's files is the pinned commit's listing (tools/paper_table.py writes it from
../shared/data/paper/tree-5605459.tsv): real names, git blob ids, kinds and the languages the names announce;
`qtalign data fetch paper --list` prints it; the presets name only files it lists."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
from pathlib import Path
from types import ModuleType

import pytest
import yaml

from qtalign.cli.main import main
from qtalign.data import fetch as fetch_mod
from qtalign.data.fetch import FOLDERS, blob_id, load_manifest
from qtalign.data.fetch_run import LIST_COLUMNS
from qtalign.data.paper_demonstrations import SCRIPTS
from qtalign.data.paper_names import QuestionName, file_kind, question_name

ROOT = Path(__file__).resolve().parents[2]
TABLE = ROOT / "src" / "qtalign" / "data" / "paper_files.json"
PRESETS = ROOT / "src" / "qtalign" / "study" / "presets"


@pytest.fixture
def listing(paper_data: Path) -> Path:
    path = paper_data / "tree-5605459.tsv"
    if not path.is_file():
        pytest.skip(f"{path} is missing")
    return path


def read_tsv(path: Path) -> dict[str, str]:
    rows = [line.split("\t") for line in path.read_text(encoding="utf-8").splitlines()[1:]]
    return {p: b for b, p in rows}


def tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("paper_table", ROOT / "tools" / "paper_table.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---- names and blob ids ----------------------------------------------------------------------------------------
def test_git_blob_ids(tmp_path: Path) -> None:
    """The ids git itself gives (git hash-object) for an empty file and for 'hello\\n'."""
    (tmp_path / "empty").write_bytes(b"")
    (tmp_path / "hello").write_bytes(b"hello\n")
    assert blob_id(tmp_path / "empty") == "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"
    assert blob_id(tmp_path / "hello") == "ce013625030ba8dba906f756967f9e9ca394464a"


@pytest.mark.parametrize(("name", "sources", "target"), [
    ("snli_zh10k_train_question.json", ("zh",), "en"),
    ("emotion_zhes10k_question.json", ("zh", "es"), "en"),
    ("emotion_zhdeit10k_question.json", ("zh", "de", "it"), "en"),
    ("emotion_en2zhja2zh10k_question.json", ("en", "ja"), "zh"),  # en2zh + ja2zh
    ("emotion_sw2zhhi2zh10k_question.json", ("sw", "hi"), "zh"),
    ("emotion_de2it10k_question.json", ("de",), "it"),
    ("emotion_en2zhja2it10k_question.json", (), None),  # two targets: not read
    ("snli_zhxx10k_question.json", (), None),  # xx is none of the 20 languages
    ("snli_zhzh10k_question.json", (), None),  # a language twice
    ("emotion_en2zhj2zh10k_question.json", (), None),  # a part of the wrong length
])
def test_question_names(name: str, sources: tuple[str, ...], target: str | None) -> None:
    q = question_name(name)
    assert q == QuestionName(name.split("_", 1)[0], sources, target)


def test_kinds_from_names() -> None:
    assert question_name("snli_en10k_train.json") is None and question_name("emotion_de500_test.json") is None
    assert [file_kind(n) for n in ("emotion_de500_test.json", "snli_en10k_train.json",
                                   "snli_de10k_train_question.json", "emotion_zhes10k_question.json", "README.md")] \
        == ["test", "train", "question", "question", None]


# ---- the table against the listing -----------------------------------------------------------------------------
def test_the_table_is_the_pinned_commits_listing(listing: Path) -> None:
    tree = read_tsv(listing)
    man = load_manifest()
    assert listing.name == f"tree-{man.commit[:7]}.tsv"
    data = {p: b for p, b in tree.items() if p.startswith(tuple(FOLDERS))}
    scripts = {spec.script.removeprefix("scripts/") for spec in SCRIPTS.values()}
    by_remote = {e.remote: e for e in man.files}
    assert len(by_remote) == len(man.files) and set(by_remote) == set(data) | scripts  # nothing added, nothing left out
    for remote, e in by_remote.items():
        assert e.blob == tree[remote], remote
        name = remote.rsplit("/", 1)[-1]
        folder = next((f for f in FOLDERS if remote.startswith(f)), None)
        assert e.path == (FOLDERS[folder] + name if folder else "scripts/" + name)
        assert e.kind == (file_kind(name) if folder else "script")
        q = question_name(name)
        assert (e.sources, e.target) == ((q.sources, q.target) if q else ((), None)), name
    questions = {f: sorted(e.remote for e in man.files if e.kind == "question" and e.remote.startswith(f))
                 for f in FOLDERS}
    assert {f: len(v) for f, v in questions.items()} == {"data/ap_emotion/": 24, "data/snli/": 12, "data/paws/": 10}
    assert sorted(p for v in questions.values() for p in v) == sorted(p for p in data if p.endswith("_question.json"))
    unknown = [e.path for e in man.files if e.kind == "question" and e.target is None]
    assert unknown == []  # every released question name reads under the rule of qtalign.data.paper_names


def test_the_table_pins_the_local_copies(paper_data: Path, tmp_path: Path) -> None:
    man = load_manifest()
    assert man.commit == "5605459cab2d9c2c170a30268c0ab84cf17bb66a"
    assert man.base_url.startswith("https://raw.githubusercontent.com/Shimao-Zhang/LLM-Multilingual-Learner/")
    for e in man.files:
        fetch_mod.safe_target(tmp_path, e.path)
        fetch_mod.safe_target(tmp_path, e.remote, "remote path")
    pinned = [e for e in man.files if e.sha256]
    assert len(pinned) == 46 and {e.path.split("/")[0] for e in pinned} == {"emotion", "snli"}
    for e in pinned:
        data = (paper_data / e.path).read_bytes()
        assert hashlib.sha256(data).hexdigest() == e.sha256 and len(data) == e.size
        assert blob_id(paper_data / e.path) == e.blob
    assert all(e.size is None for e in man.files if e.sha256 is None)
    assert set(man.demo_tables_sha256) == set(SCRIPTS)


def test_the_tool_writes_the_packaged_table(listing: Path, paper_data: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "paper_files.json"
    shutil.copy(TABLE, out)
    assert tool().main([str(listing), "--local", str(paper_data), "--out", str(out)]) == 0
    assert out.read_bytes() == TABLE.read_bytes()
    assert "111 files (60 test, 2 train, 46 question, 3 script), 46 with a pinned sha256" in capsys.readouterr().out


def test_the_tool_refuses_another_commit_and_a_changed_copy(listing: Path, paper_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "paper_files.json"
    shutil.copy(TABLE, out)
    other = tmp_path / "tree-1234567.tsv"
    shutil.copy(listing, other)
    with pytest.raises(SystemExit, match="a listing of commit 1234567"):
        tool().main([str(other), "--out", str(out)])
    local = tmp_path / "local"
    (local / "snli").mkdir(parents=True)
    (local / "snli" / "snli_en600_test.json").write_bytes((paper_data / "snli" / "snli_en600_test.json").read_bytes()[:-1])
    with pytest.raises(SystemExit, match="snli_en600_test.json: git blob id .* differs from the listing's"):
        tool().main([str(listing), "--local", str(local), "--out", str(out)])
    assert out.read_bytes() == TABLE.read_bytes()


# ---- --list ----------------------------------------------------------------------------------------------------
def list_rows(capsys: pytest.CaptureFixture[str], *argv: str) -> list[dict[str, str]]:
    assert main(["data", "fetch", "paper", "--list", *argv]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split("\t") == list(LIST_COLUMNS)
    return [dict(zip(LIST_COLUMNS, line.split("\t"), strict=True)) for line in lines[1:]]


def test_list_prints_the_tables_files_and_downloads_nothing(capsys: pytest.CaptureFixture[str],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fetch_mod, "fetch_file", lambda *a, **k: pytest.fail("--list downloads nothing"))
    man = load_manifest()
    rows = list_rows(capsys)
    assert [r["path"] for r in rows] == [e.path for e in man.files]
    zhes = next(r for r in rows if r["path"] == "emotion/emotion_zhes10k_question.json")
    assert (zhes["kind"], zhes["sources"], zhes["target"], zhes["size"]) == ("question", "zh,es", "en", "-")
    test = next(r for r in rows if r["path"] == "snli/snli_de600_test.json")
    assert (test["sources"], test["target"], test["size"]) == ("-", "-", "130190")
    train = list_rows(capsys, "--split", "train", "--only", "paws")
    assert {r["kind"] for r in train} == {"train", "question"} and all(r["path"].startswith("paws/") for r in train)


def test_list_gives_the_pinned_commits_question_files_exactly(listing: Path, capsys: pytest.CaptureFixture[str]
                                                              ) -> None:
    tree = read_tsv(listing)
    rows = [r for r in list_rows(capsys, "--split", "train") if r["kind"] == "question"]
    remote = {r["path"]: next(f + r["path"].split("/", 1)[1] for f, d in FOLDERS.items() if r["path"].startswith(d))
              for r in rows}
    assert sorted(remote.values()) == sorted(p for p in tree if p.endswith("_question.json"))
    assert all(r["git_blob"] == tree[remote[r["path"]]] for r in rows)


def test_dest_is_required_unless_list(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "fetch", "paper"]) == 2
    assert "qtalign: error: --dest: required" in capsys.readouterr().err


# ---- the presets name released files only -----------------------------------------------------------------------
def test_presets_name_only_files_of_the_table() -> None:
    paths = {e.path for e in load_manifest().files}
    named = []
    for preset in sorted(PRESETS.glob("*.yaml")):
        for mix in yaml.safe_load(preset.read_text(encoding="utf-8")).get("mixes", []):
            data = mix.get("data")
            for d in data if isinstance(data, list) else [data]:
                if isinstance(d, str) and d.endswith(".json"):
                    named.append(d)
                    assert d in paths, f"{preset.name}: mix {mix['name']}: {d} is not a file of the pinned commit"
    assert len(named) >= 14  # paper-main's in-task mixes (and paper-taskgen's)
    assert json.loads(TABLE.read_text(encoding="utf-8"))["files"]  # the table itself parses as plain JSON
