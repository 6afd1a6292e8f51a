"""`qtalign data fetch paper` against a local HTTP server (no network): success, resume, 404, truncation, git blob
ids and sha256 (pinned or recorded), path escapes; demos read from scripts in the paper's shape, never executed; the
packaged table against the pinned commit's listing."""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import pytest
from paper_shapes import script_from_demos, script_text

from qtalign.data import fetch as fetch_mod
from qtalign.data.fetch import LOCK_NAME, Manifest, RemoteFile, fetch_paper, load_manifest
from qtalign.data.paper_demonstrations import SCRIPTS, build_demos, tables_digest
from qtalign.errors import QtalignError

# ---- a tiny repository in the paper's layout -------------------------------------------------------------------
EMO_PREFIX = {
    "en": 'Great fun from start to end.\nEmotion: "positive"   \nDull and far too long\nEmotion: "negative"',
    "zh": '从头到尾都很有趣。\n情感: "positive"\n沉闷而且太长\n情感: "negative"',
}
EMO_CUES = {"en": {"input": "", "answer": 'Emotion: "'}, "zh": {"input": "", "answer": '情感: "'}}
EMO_TABLES = [("positive_answers", {"en": "positive", "zh": "积极"}), ("negative_answers", {"en": "negative", "zh": "消极"})]
NLI_PREFIX = {
    "en": 'Premise: A man sings.\nHypothesis: A person makes music.\nAnswer: "entailment"\n'
          'Premise: Two dogs run.\nHypothesis: The dogs sleep.\nAnswer: "contradiction"',
    "zh": '前提: 一个男人在唱歌。\n假设: 有人在做音乐。\n答案: "entailment"\n'
          '前提：两只狗在跑。\n假设: 狗在睡觉。\n答案: "contradiction"',
}
NLI_CUES = {"en": {"premise": "Premise: ", "hypothesis": "Hypothesis: ", "answer": 'Answer: "'},
            "zh": {"premise": "前提: ", "hypothesis": "假设: ", "answer": '答案: "'}}
NLI_TABLES = [("positive_answers", {"en": "entailment", "zh": "蕴含"}), ("neutral_answers", {"en": "neutral", "zh": "中立"}),
              ("negative_answers", {"en": "contradiction", "zh": "矛盾"})]
PAWS_PREFIX = {"en": 'Sentence 1: A b .\nSentence 2: A b .\nAnswer: "same"\nSentence 1: B a .\nSentence 2: A b .\n'
                     'Answer: "different"'}
PAWS_CUES = {"en": {"sentence1": "Sentence 1: ", "sentence2": "Sentence 2: ", "answer": 'Answer: "'}}
PAWS_TABLES = [("positive_answers", {"en": "same"}), ("negative_answers", {"en": "different"})]


def _json(rows: list[dict[str, str]]) -> bytes:
    return json.dumps(rows, ensure_ascii=False, indent=4).encode("utf-8")


def fake_repo() -> dict[str, bytes]:
    """Repository path -> bytes, in the shapes of the paper's files (small and made up)."""
    return {
        "data/ap_emotion/emotion_en500_test.json": _json(
            [{"input": "Loved it.", "answer": "positive"}, {"input": "Dull and far too long", "answer": "negative"},
             {"input": "Great fun from start to end.", "answer": "positive"}]),
        "data/ap_emotion/emotion_zh500_test.json": _json(
            [{"input": "喜欢。", "answer": "积极"}, {"input": "沉闷而且太长", "answer": "消极"},
             {"input": "从头到尾都很有趣。", "answer": "积极"}]),
        "data/snli/snli_en600_test.json": _json(
            [{"premise": "A man sings.", "hypothesis": "Nobody sings.", "answer": "contradiction"}]),
        "data/snli/snli_zh600_test.json": _json(
            [{"premise": "一个女人在跑。", "hypothesis": "有人在动。", "answer": "蕴含"},
             {"premise": "一个男人在唱歌。", "hypothesis": "没人唱歌。", "answer": "矛盾"}]),
        "data/snli/snli_en10k_train.json": _json([{"premise": "p", "hypothesis": "h", "answer": "neutral"}] * 50),
        "data/paws/paws_en500_test.json": _json([{"sentence1": "x .", "sentence2": "y .", "answer": "different"}]),
        "emotion_eval_2shot_enout.py": script_text(EMO_PREFIX, EMO_TABLES, ["input"], EMO_CUES).encode(),
        "snli_eval_6shot_enout.py": script_text(NLI_PREFIX, NLI_TABLES, ["premise", "hypothesis"], NLI_CUES).encode(),
        "paws_eval_4shot_enout.py": script_text(PAWS_PREFIX, PAWS_TABLES, ["sentence1", "sentence2"], PAWS_CUES,
                                                gold_key="en").encode(),
    }


LOCAL = {"data/ap_emotion/": "emotion/", "data/snli/": "snli/", "data/paws/": "paws/"}


def local_path(remote: str) -> str:
    for a, b in LOCAL.items():
        if remote.startswith(a):
            return b + remote[len(a):]
    return "scripts/" + remote


def kind_of(remote: str) -> str:
    if remote.endswith(".py"):
        return "script"
    return "question" if remote.endswith("_question.json") else "train" if remote.endswith("_train.json") else "test"


def git_blob(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def manifest(repo: dict[str, bytes], unpinned: tuple[str, ...] = ("paws", "scripts")) -> Manifest:
    """A file table for repo: every file's git blob id; sha256/size pinned except in some folders."""
    entries = []
    for remote, data in repo.items():
        path = local_path(remote)
        pinned = not path.startswith(unpinned)
        entries.append(RemoteFile(path, remote, kind_of(remote), git_blob(data),
                                  hashlib.sha256(data).hexdigest() if pinned else None, len(data) if pinned else None))
    return Manifest("someone/repo", "0" * 40, "http://unused.invalid", entries, {})


# ---- the server ------------------------------------------------------------------------------------------------
class Server:
    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = dict(files)
        self.requests: list[tuple[str, str | None]] = []
        self.drop: dict[str, int] = {}  # path -> number of responses to cut off halfway
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                path = unquote(urlparse(self.path).path).lstrip("/")
                rng = self.headers.get("Range")
                server.requests.append((path, rng))
                data = server.files.get(path)
                if data is None:
                    self.send_error(404, "Not Found")
                    return
                start = int(rng.removeprefix("bytes=").split("-")[0]) if rng else 0
                if start >= len(data) and rng:
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = data[start:]
                self.send_response(206 if rng else 200)
                if rng:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if server.drop.get(path, 0) > 0:
                    server.drop[path] -= 1
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[Server]:
    s = Server(fake_repo())
    yield s
    s.close()


def run(dest: Path, server: Server, man: Manifest | None = None, **kw: Any) -> Any:
    kw.setdefault("backoff", 0.0)
    kw.setdefault("timeout", 10.0)
    return fetch_paper(dest, server.url, man or manifest(fake_repo()), progress=False, **kw)


# ---- tests -----------------------------------------------------------------------------------------------------
def test_success_then_rerun_is_a_no_op(server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    dest = tmp_path / "paper"
    result = run(dest, server)
    repo = fake_repo()
    for remote, data in repo.items():
        assert (dest / local_path(remote)).read_bytes() == data
    assert not list(dest.rglob("*.part"))
    checks = {f.path: f.check for f in result.files}
    assert checks["emotion/emotion_en500_test.json"] == "pinned" and checks["paws/paws_en500_test.json"] == "recorded"
    assert checks["scripts/snli_eval_6shot_enout.py"] == "recorded"
    lock = json.loads((dest / LOCK_NAME).read_text())
    assert lock["files"]["scripts/snli_eval_6shot_enout.py"]["check"] == "recorded on first download"
    assert lock["files"]["emotion/emotion_en500_test.json"]["sha256"] == hashlib.sha256(
        repo["data/ap_emotion/emotion_en500_test.json"]).hexdigest()
    # the scripts were parsed, never run
    assert not list(tmp_path.rglob("EXECUTED"))
    n = len(server.requests)
    again = run(dest, server)
    assert len(server.requests) == n and {f.action for f in again.files} == {"present"}
    assert {f.check for f in again.files if f.path.startswith("paws")} == {"locked"}


def test_demos_from_the_scripts(server: Server, tmp_path: Path) -> None:
    dest = tmp_path / "paper"
    result = run(dest, server)
    assert set(result.demos) == {"emotion", "snli", "paws"}
    emo = json.loads((dest / "demos" / "emotion_demos.json").read_text(encoding="utf-8"))
    assert emo["task"] == "emotion" and emo["shots"] == 2 and emo["canonical_labels"] == ["positive", "negative"]
    assert emo["item_fields"] == ["input", "answer"] and emo["languages"] == ["en", "zh"]
    assert emo["prompt_assembly"] == "prefix + '\\n' + text + '\\n' + query_cues.answer"
    en = emo["demos"]["en"]
    assert en["prefix"] == EMO_PREFIX["en"] and en["query_cues"] == {"answer": 'Emotion: "'}
    assert en["items"][0] == {"input": "Great fun from start to end.", "answer": "positive", "answer_line_trailing": "   ",
                              "lines": ["Great fun from start to end.", 'Emotion: "positive"   '], "test_index": 2,
                              "test_item_answer": "positive"}
    assert en["items"][1]["test_index"] == 1 and en["test_file_labels"] == ["negative", "positive"]
    zh = emo["demos"]["zh"]
    assert zh["label_words"] == {"enout": {"positive": "positive", "negative": "negative"},
                                 "native": {"positive": "积极", "negative": "消极"}}
    assert zh["variants"]["native"]["prefix"] == EMO_PREFIX["zh"].replace('"positive"', '"积极"').replace(
        '"negative"', '"消极"')
    snli = json.loads((dest / "demos" / "snli_demos.json").read_text(encoding="utf-8"))
    zh = snli["demos"]["zh"]
    assert zh["items"][1]["premise"] == "两只狗在跑。" and zh["items"][1]["premise_cue_in_prefix"] == "前提："
    assert zh["items"][0]["in_test_file"] is True and zh["items"][0]["test_indices_sharing_a_sentence"] == [1]
    assert any("not the query cue '前提: '" in q for q in zh["quirks"])
    # the zh table says 中立 for neutral; the made-up zh test file has no neutral item, so the script can never credit it
    assert any("absent from the test file's labels for neutral" in q for q in zh["quirks"])
    assert snli["source"]["script"] == "snli_eval_6shot_enout.py" and snli["source"]["commit"] == "0" * 40
    paws = json.loads((dest / "demos" / "paws_demos.json").read_text(encoding="utf-8"))
    assert paws["gold_compared_with"] == "en label table"
    assert paws["demos"]["en"]["quirks"] == ["demo 0 sentence1 and sentence2 are the same string"]


def test_resumes_a_partial_file(server: Server, tmp_path: Path) -> None:
    dest = tmp_path / "paper"
    data = fake_repo()["data/snli/snli_en10k_train.json"]
    part = dest / "snli" / "snli_en10k_train.json.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(data[:100])
    result = run(dest, server, tasks=["snli"], demos=False)
    assert ("data/snli/snli_en10k_train.json", "bytes=100-") in server.requests
    assert (dest / "snli" / "snli_en10k_train.json").read_bytes() == data and not part.exists()
    assert {f.path: f.action for f in result.files}["snli/snli_en10k_train.json"] == "resumed"


def test_dropped_connection_is_resumed_with_a_range_request(server: Server, tmp_path: Path) -> None:
    path = "data/snli/snli_en10k_train.json"
    server.drop[path] = 1
    run(tmp_path / "d", server, tasks=["snli"], demos=False)
    ranges = [r for p, r in server.requests if p == path]
    assert ranges[0] is None and ranges[1] is not None and ranges[1].startswith("bytes=")
    assert (tmp_path / "d" / "snli" / "snli_en10k_train.json").read_bytes() == fake_repo()[path]


def test_truncated_download_keeps_part_and_a_rerun_finishes(server: Server, tmp_path: Path) -> None:
    path = "data/snli/snli_en10k_train.json"
    server.drop[path] = 10
    dest = tmp_path / "d"
    with pytest.raises(QtalignError, match="download incomplete.*rerun the same command to resume"):
        run(dest, server, tasks=["snli"], demos=False, retries=1)
    part = dest / "snli" / "snli_en10k_train.json.part"
    assert part.is_file() and 0 < part.stat().st_size < len(fake_repo()[path])
    assert not (dest / "snli" / "snli_en10k_train.json").exists()
    server.drop[path] = 0
    run(dest, server, tasks=["snli"], demos=False)
    assert (dest / "snli" / "snli_en10k_train.json").read_bytes() == fake_repo()[path] and not part.exists()


def test_404_names_the_url(server: Server, tmp_path: Path) -> None:
    del server.files["data/paws/paws_en500_test.json"]
    with pytest.raises(QtalignError, match=r"paws_en500_test\.json: HTTP 404"):
        run(tmp_path / "d", server, tasks=["paws"])
    assert not (tmp_path / "d" / "paws" / "paws_en500_test.json").exists()
    assert not list((tmp_path / "d").rglob("*.part"))


def test_truncated_file_is_refused(server: Server, tmp_path: Path) -> None:
    path = "data/ap_emotion/emotion_en500_test.json"
    full = fake_repo()[path]
    server.files[path] = full[:-20]  # a complete response, but of a shorter file than the pinned one
    with pytest.raises(QtalignError, match=rf"got {len(full) - 20} bytes, expected {len(full)} bytes"):
        run(tmp_path / "d", server, tasks=["emotion"])
    assert not (tmp_path / "d" / "emotion" / "emotion_en500_test.json").exists()
    assert not list((tmp_path / "d").rglob("*.part"))
    assert not (tmp_path / "d" / "demos").exists()


def test_a_changed_file_fails_its_git_blob_id(server: Server, tmp_path: Path) -> None:
    path = "data/ap_emotion/emotion_zh500_test.json"
    good = fake_repo()[path]
    server.files[path] = good.replace("喜欢".encode(), "讨厌".encode())
    assert len(server.files[path]) == len(good)
    with pytest.raises(QtalignError, match=rf"git blob id {git_blob(server.files[path])}, expected {git_blob(good)} "
                                           r"\(the pinned commit's listing\); the download was deleted"):
        run(tmp_path / "d", server, tasks=["emotion"])
    assert not (tmp_path / "d" / "emotion" / "emotion_zh500_test.json").exists()


def test_a_file_without_a_pinned_sha256_is_checked_by_its_blob_id(server: Server, tmp_path: Path) -> None:
    """No sha256 pinned and nothing recorded yet: the git blob id alone refuses another file, first time and later."""
    path = "data/paws/paws_en500_test.json"
    good = fake_repo()[path]
    server.files[path] = _json([{"sentence1": "z .", "sentence2": "y .", "answer": "same"}])
    dest = tmp_path / "d"
    with pytest.raises(QtalignError, match=rf"paws_en500_test\.json: got .*git blob id .*expected {git_blob(good)}"):
        run(dest, server, tasks=["paws"], demos=False)
    assert not (dest / "paws" / "paws_en500_test.json").exists() and not list(dest.rglob("*.part"))
    server.files[path] = good
    run(dest, server, tasks=["paws"], demos=False)
    entry = json.loads((dest / LOCK_NAME).read_text())["files"]["paws/paws_en500_test.json"]
    assert entry["blob"] == git_blob(good) and entry["sha256"] == hashlib.sha256(good).hexdigest()
    assert entry["check"] == "recorded on first download"
    (dest / "paws" / "paws_en500_test.json").write_text("edited by hand")
    with pytest.raises(QtalignError, match="git blob id .*qtalign's table\\); delete the file"):
        run(dest, server, tasks=["paws"], demos=False)


def test_sha256_pins_and_records_are_still_checked(server: Server, tmp_path: Path) -> None:
    """The blob id matches but the sha256 does not: a wrong pin in the table, or a lock whose record was changed."""
    man = manifest(fake_repo())
    man.files = [RemoteFile(e.path, e.remote, e.kind, e.blob, "0" * 64, e.size) if e.path.endswith("en600_test.json")
                 else e for e in man.files]
    with pytest.raises(QtalignError, match=r"snli_en600_test\.json: got sha256 [0-9a-f]{64}, expected 0{64}"):
        run(tmp_path / "d", server, man, tasks=["snli"], demos=False)
    dest = tmp_path / "e"
    run(dest, server, tasks=["paws"], demos=False)
    lock = json.loads((dest / LOCK_NAME).read_text())
    lock["files"]["paws/paws_en500_test.json"]["sha256"] = "f" * 64
    (dest / LOCK_NAME).write_text(json.dumps(lock))
    with pytest.raises(QtalignError, match=r"sha256 .*expected f{64} \(the value recorded in .*delete the file"):
        run(dest, server, tasks=["paws"], demos=False)


@pytest.mark.parametrize("bad", ["../x", "emotion/../../x", "/etc/passwd", "a\\..\\b", "", "emotion//x", "~/x"])
def test_path_escape_is_refused_before_anything_is_written(server: Server, tmp_path: Path, bad: str) -> None:
    man = manifest(fake_repo())
    man.files.append(RemoteFile(bad, "data/paws/paws_en500_test.json", "test", "0" * 40, None, None))
    dest = tmp_path / "d"
    with pytest.raises(QtalignError, match="refusing a path that escapes"):
        run(dest, server, man)
    assert not dest.exists() and server.requests == []


def test_remote_path_escape_and_symlinked_folders_are_refused(server: Server, tmp_path: Path) -> None:
    man = manifest(fake_repo())
    man.files.append(RemoteFile("paws/x.json", "../../secret", "test", "0" * 40, None, None))
    with pytest.raises(QtalignError, match="remote path '../../secret'"):
        run(tmp_path / "d", server, man)
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "d2"
    dest.mkdir()
    (dest / "emotion").symlink_to(outside, target_is_directory=True)
    with pytest.raises(QtalignError, match="escapes"):
        run(dest, server)
    assert list(outside.iterdir()) == []


def test_pinned_demo_tables_are_checked(server: Server, tmp_path: Path) -> None:
    man = manifest(fake_repo())
    man.demo_tables_sha256 = {"snli": "0" * 64}
    with pytest.raises(QtalignError, match="prompt tables differ from the pinned ones"):
        run(tmp_path / "d", server, man, tasks=["snli"])
    assert not (tmp_path / "d" / "demos" / "snli_demos.json").exists()
    out = build_demos(SCRIPTS["snli"], tmp_path / "d", "r", "c")
    man.demo_tables_sha256 = {"snli": tables_digest(out)}
    result = run(tmp_path / "d", server, man, tasks=["snli"])
    assert json.loads(result.demos["snli"].read_text())["source"]["tables_sha256"] == tables_digest(out)


def test_a_script_in_another_shape_is_a_one_line_error(server: Server, tmp_path: Path) -> None:
    server.files["emotion_eval_2shot_enout.py"] = b"prompt_prefix = {'en': 'a' + 'b'}\n"
    with pytest.raises(QtalignError, match="emotion_eval_2shot_enout.py: line 1: prompt_prefix is not a dict of string"):
        run(tmp_path / "d", server, manifest(server.files), tasks=["emotion"])  # a table listing that script


def test_cli(server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
             capsys: pytest.CaptureFixture[str]) -> None:
    from qtalign.cli.main import main

    monkeypatch.setattr(fetch_mod, "load_manifest", lambda path=None: manifest(fake_repo()))
    dest = tmp_path / "d"
    rc = main(["data", "fetch", "paper", "--dest", str(dest), "--base-url", server.url, "--no-progress"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "git blob id: all 9 match" in out and "5 matched qtalign's pinned hashes" in out
    assert "4 file(s) have no pinned sha256: it was recorded now in" in out
    assert "paws/paws_en500_test.json" in out and "demos: snli ->" in out
    server.files.pop("data/snli/snli_en600_test.json")
    shutil.rmtree(dest)
    rc = main(["data", "fetch", "paper", "--dest", str(dest), "--base-url", server.url, "--no-progress"])
    assert rc == 2 and "HTTP 404" in capsys.readouterr().err
    rc = main(["data", "fetch", "paper", "--dest", str(dest), "--only", "xnli", "--base-url", server.url])
    assert rc == 2 and "unknown task(s) xnli" in capsys.readouterr().err


# ---- the paper's own files ----------------------------------------------------------------------------------
def test_scripts_in_the_papers_shape_give_the_papers_demos(paper_data: Path, tmp_path: Path) -> None:
    """Scripts written in the real scripts' shape from ../shared/data/paper/demos give back those files' content
    (everything the literals and the test files determine) and the packaged table digests."""
    dest = tmp_path / "d"
    for sub in ("emotion", "snli"):
        shutil.copytree(paper_data / sub, dest / sub)
    pins = load_manifest().demo_tables_sha256
    for task, gold, no_table in (("emotion", "target_lang", ()), ("snli", "target_lang", ()), ("paws", "en", ("nl",))):
        ref = json.loads((paper_data / "demos" / f"{task}_demos.json").read_text(encoding="utf-8"))
        script = dest / SCRIPTS[task].script
        script.parent.mkdir(parents=True, exist_ok=True)
        script.write_text(script_from_demos(ref, gold, no_table), encoding="utf-8")
        out = build_demos(SCRIPTS[task], dest, "Shimao-Zhang/LLM-Multilingual-Learner", ref["source"]["commit"])
        assert tables_digest(out) == tables_digest(ref) == pins[task]
        for key in ("shots", "item_fields", "canonical_labels", "languages", "prompt_assembly"):
            assert out[key] == ref[key], key
        for lang, r in ref["demos"].items():
            o = out["demos"][lang]
            assert list(o) == list(r)
            for key in ("prefix", "query_cues", "label_words", *(("test_file_labels",) if task != "paws" else ())):
                assert o[key] == r[key], (task, lang, key)
            for oi, ri in zip(o["items"], r["items"], strict=True):
                if task == "paws":  # no PAWS test files here
                    ri = {k: v for k, v in ri.items() if k != "in_test_file"}
                assert oi == ri and list(oi) == list(ri), (task, lang)
            for q in o["quirks"]:  # the mechanical quirks are among the hand-written ones
                assert any(rq.startswith(q) for rq in r["quirks"]), (task, lang, q)
            if "variants" in r:
                assert o["variants"]["native"] == r["variants"]["native"]
    assert not list(tmp_path.rglob("EXECUTED"))


def test_a_file_url_mirror(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    for remote, data in fake_repo().items():
        (mirror / remote).parent.mkdir(parents=True, exist_ok=True)
        (mirror / remote).write_bytes(data)
    result = fetch_paper(tmp_path / "d", mirror.as_uri(), manifest(fake_repo()), tasks=["emotion"], progress=False)
    assert (tmp_path / "d" / "emotion" / "emotion_zh500_test.json").read_bytes() == fake_repo()[
        "data/ap_emotion/emotion_zh500_test.json"] and "emotion" in result.demos
    (mirror / "data/ap_emotion/emotion_en500_test.json").unlink()
    with pytest.raises(QtalignError, match="no such file in the mirror"):
        fetch_paper(tmp_path / "d2", mirror.as_uri(), manifest(fake_repo()), tasks=["emotion"], progress=False)


# ---- training files: mixes, --split ---------------------------------------------------------------------------
def question_rows(task_name: str, texts: dict[str, list[tuple[str, ...]]]) -> bytes:
    """A question-translation file in the paper's shape: each source language's items => English, interleaved."""
    from qtalign.data.pairs import make_pair
    from qtalign.tasks import get_task

    task = get_task(task_name)
    rows = []
    for i, en in enumerate(texts["en"]):
        for lang, items in texts.items():
            if lang != "en":
                p = make_pair(task, lang, "en", items[i], en, i)
                rows.append({"input": p.input, "answer": p.output})
    return _json(rows)


REVIEWS = {"en": [("Loved it.",), ("Too loud.",)], "zh": [("喜欢。",), ("太吵了。",)],
           "es": [("Me encantó.",), ("Demasiado ruidoso.",)]}
PAIRS = {"en": [("A man sings.", "A person sings.")], "sw": [("Mwanamume anaimba.", "Mtu anaimba.")],
         "hi": [("एक आदमी गाता है।", "एक व्यक्ति गाता है।")]}


def training_repo() -> dict[str, bytes]:
    """fake_repo plus training files in the shapes of the released ones: mixes of two sources, one single-language
    question file, English training items (made up, in the paper's file names)."""
    return {**fake_repo(),
            "data/ap_emotion/emotion_zhes10k_question.json": question_rows("emotion", REVIEWS),
            "data/snli/snli_swhi10k_question.json": question_rows("nli", PAIRS),
            "data/paws/paws_zh10k_train_question.json": question_rows(
                "paraphrase", {"en": [("A b .", "B a .")], "zh": [("甲 乙 。", "乙 甲 。")]}),
            "data/paws/paws_en10k_train.json": _json([{"sentence1": "a .", "sentence2": "b .", "answer": "no"}] * 2)}


@pytest.fixture
def train_server() -> Iterator[Server]:
    s = Server(training_repo())
    yield s
    s.close()


def test_split_and_only_select_test_or_training_files(train_server: Server, tmp_path: Path) -> None:
    repo = training_repo()
    man = manifest(repo)
    train = run(tmp_path / "t", train_server, man, split="train")
    assert {f.path for f in train.files} == {local_path(r) for r in repo if kind_of(r) in ("train", "question")}
    assert train.demos == {} and not (tmp_path / "t" / "demos").exists()
    test = run(tmp_path / "e", train_server, man, split="test")
    assert {f.path for f in test.files} == {local_path(r) for r in repo if kind_of(r) in ("test", "script")}
    assert set(test.demos) == {"emotion", "snli", "paws"}
    emo = run(tmp_path / "o", train_server, man, tasks=["emotion"], split="train")
    assert [f.path for f in emo.files] == ["emotion/emotion_zhes10k_question.json"]
    with pytest.raises(QtalignError, match="--split: unknown split 'dev'"):
        run(tmp_path / "x", train_server, man, split="dev")


def test_a_fetched_mix_is_what_data_build_reads(train_server: Server, tmp_path: Path) -> None:
    from qtalign.data.build import build_pairs
    from qtalign.tasks import get_task

    dest = tmp_path / "paper"
    run(dest, train_server, manifest(training_repo()), split="all")
    r = build_pairs(get_task("emotion"), [dest / "emotion"], ["zh", "es"], "en", per_lang=None,
                    exclude=dest / "emotion")
    # "Loved it." is also an English test item: the contamination guard drops that pair in both languages
    assert r.counts == {"zh": 1, "es": 1} and r.contaminated == {"zh": 1, "es": 1}
    assert set(r.sources.values()) == {str(dest / "emotion" / "emotion_zhes10k_question.json")}
    nli = build_pairs(get_task("nli"), [dest / "snli" / "snli_swhi10k_question.json"], ["sw", "hi"], "en",
                      per_lang=None)
    assert nli.counts == {"sw": 1, "hi": 1}


def test_cli_split_and_only(train_server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                            capsys: pytest.CaptureFixture[str]) -> None:
    from qtalign.cli.main import main

    monkeypatch.setattr(fetch_mod, "load_manifest", lambda path=None: manifest(training_repo()))
    dest = tmp_path / "d"
    rc = main(["data", "fetch", "paper", "--dest", str(dest), "--base-url", train_server.url, "--no-progress",
               "--split", "train", "--only", "snli,paws"])
    out = capsys.readouterr().out
    assert rc == 0 and "4 files" in out and "demos:" not in out
    assert sorted(p.name for p in dest.rglob("*.json") if p.name != LOCK_NAME) == [
        "paws_en10k_train.json", "paws_zh10k_train_question.json", "snli_en10k_train.json",
        "snli_swhi10k_question.json"]
    with pytest.raises(SystemExit) as exit_info:  # argparse's choices
        main(["data", "fetch", "paper", "--dest", str(dest), "--split", "dev"])
    assert exit_info.value.code == 2 and "invalid choice: 'dev'" in capsys.readouterr().err
