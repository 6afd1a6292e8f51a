"""`qtalign data fetch paper` against a local HTTP server (no network): success, resume, 404, truncation, bad hash,
path escapes, trust-on-first-download records; demos read from scripts in the paper's shape, never executed."""

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
from qtalign.data.paper_demos import SCRIPTS, build_demos, tables_digest
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


def manifest(repo: dict[str, bytes], unpinned: tuple[str, ...] = ("paws", "scripts"), **override: bytes) -> Manifest:
    """A file table for repo: pinned sha256/size (from override bytes where given), unpinned for some folders."""
    entries = []
    for remote, data in repo.items():
        path = local_path(remote)
        ref = override.get(remote, data)
        pinned = not path.startswith(unpinned)
        entries.append(RemoteFile(path, remote, "test", hashlib.sha256(ref).hexdigest() if pinned else None,
                                  len(ref) if pinned else None))
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
    with pytest.raises(QtalignError, match=rf"got {len(full) - 20} bytes .* expected {len(full)} bytes"):
        run(tmp_path / "d", server, tasks=["emotion"])
    assert not (tmp_path / "d" / "emotion" / "emotion_en500_test.json").exists()
    assert not list((tmp_path / "d").rglob("*.part"))
    assert not (tmp_path / "d" / "demos").exists()


def test_bad_hash_is_refused(server: Server, tmp_path: Path) -> None:
    path = "data/ap_emotion/emotion_zh500_test.json"
    good = fake_repo()[path]
    server.files[path] = good.replace("喜欢".encode(), "讨厌".encode())
    assert len(server.files[path]) == len(good)
    with pytest.raises(QtalignError, match="sha256 .* expected .*the download was deleted"):
        run(tmp_path / "d", server, tasks=["emotion"])
    assert not (tmp_path / "d" / "emotion" / "emotion_zh500_test.json").exists()


def test_a_changed_file_after_first_download_is_refused(server: Server, tmp_path: Path) -> None:
    dest = tmp_path / "d"
    run(dest, server, tasks=["paws"], demos=False)
    target = dest / "paws" / "paws_en500_test.json"
    target.unlink()
    server.files["data/paws/paws_en500_test.json"] = _json([{"sentence1": "z .", "sentence2": "y .", "answer": "same"}])
    with pytest.raises(QtalignError, match="expected"):
        run(dest, server, tasks=["paws"], demos=False)
    assert not target.exists()
    target.write_text("edited by hand")
    with pytest.raises(QtalignError, match="differs from the one recorded in .*delete the file"):
        run(dest, server, tasks=["paws"], demos=False)


@pytest.mark.parametrize("bad", ["../x", "emotion/../../x", "/etc/passwd", "a\\..\\b", "", "emotion//x", "~/x"])
def test_path_escape_is_refused_before_anything_is_written(server: Server, tmp_path: Path, bad: str) -> None:
    man = manifest(fake_repo())
    man.files.append(RemoteFile(bad, "data/paws/paws_en500_test.json", "test", None, None))
    dest = tmp_path / "d"
    with pytest.raises(QtalignError, match="refusing a path that escapes"):
        run(dest, server, man)
    assert not dest.exists() and server.requests == []


def test_remote_path_escape_and_symlinked_folders_are_refused(server: Server, tmp_path: Path) -> None:
    man = manifest(fake_repo())
    man.files.append(RemoteFile("paws/x.json", "../../secret", "test", None, None))
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
        run(tmp_path / "d", server, tasks=["emotion"])


def test_cli(server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
             capsys: pytest.CaptureFixture[str]) -> None:
    from qtalign.cli.main import main

    monkeypatch.setattr(fetch_mod, "load_manifest", lambda path=None: manifest(fake_repo()))
    dest = tmp_path / "d"
    rc = main(["data", "fetch", "paper", "--dest", str(dest), "--base-url", server.url, "--no-progress"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "5 matched qtalign's pinned hashes" in out and "have no pinned hash yet" in out and "RECORDED" in out
    assert "paws/paws_en500_test.json" in out and "demos: snli ->" in out
    server.files.pop("data/snli/snli_en600_test.json")
    shutil.rmtree(dest)
    rc = main(["data", "fetch", "paper", "--dest", str(dest), "--base-url", server.url, "--no-progress"])
    assert rc == 2 and "HTTP 404" in capsys.readouterr().err
    rc = main(["data", "fetch", "paper", "--dest", str(dest), "--only", "xnli", "--base-url", server.url])
    assert rc == 2 and "unknown task(s) xnli" in capsys.readouterr().err


# ---- the packaged table and the paper's own files --------------------------------------------------------------
def test_packaged_table_is_safe_and_pins_the_local_copies(paper_data: Path, tmp_path: Path) -> None:
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
    assert {SCRIPTS[t].script for t in SCRIPTS} <= {e.path for e in man.files}
    assert set(man.demo_tables_sha256) == set(SCRIPTS)


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
