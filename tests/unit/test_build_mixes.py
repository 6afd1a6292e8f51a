"""Released question-translation mixes (e.g. emotion_zhes10k_question.json: zh and es questions => en in one file)
are read by `qtalign data build` given as a file or found in a folder, beside single-language question files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qtalign.cli.data_build import main
from qtalign.data.build import build_pairs
from qtalign.data.pairs import make_pair
from qtalign.data.sources import question_file_langs, scan_sources
from qtalign.errors import QtalignError
from qtalign.runs.build import manifest_path
from qtalign.tasks import get_task

EMO = get_task("emotion")
NLI = get_task("nli")
EN = ["I loved this blender.", "The strap broke on day two.", "Arrived late but works.", "Best book this year."]
ZH = ["我很喜欢这个搅拌机。", "带子第二天就断了。", "到得晚但能用。", "今年最好的书。"]
ES = ["Me encantó esta licuadora.", "La correa se rompió al segundo día.", "Llegó tarde pero funciona.",
      "El mejor libro del año."]


def mix_rows() -> list[dict[str, str]]:
    """A released mix in the paper's shape: zh and es question pairs interleaved, English side as the answer."""
    rows = []
    for i in range(len(EN)):
        for lang, texts in (("zh", ZH), ("es", ES)):
            p = make_pair(EMO, lang, "en", (texts[i],), (EN[i],), i)
            rows.append({"input": p.input, "answer": p.output})
    return rows


def write_mix(folder: Path, name: str = "emotion_zhes10k_question.json") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(json.dumps(mix_rows(), ensure_ascii=False, indent=1), encoding="utf-8")
    return path


def test_names_of_question_files() -> None:
    assert question_file_langs(EMO, "emotion_zhes10k_question.json") == ("zh", "es")
    assert question_file_langs(NLI, "snli_swbn10k_question.json") == ("sw", "bn")
    assert question_file_langs(NLI, "snli_zh10k_train_question.json") == ("zh",)
    assert question_file_langs(get_task("paraphrase"), "paws_de10k_train_question.json") == ("de",)
    assert question_file_langs(NLI, "emotion_zhes10k_question.json") == ()  # another task's stem
    assert question_file_langs(NLI, "snli_zhxx10k_question.json") == ()  # xx is no language
    assert question_file_langs(NLI, "snli_en10k_train.json") == ()
    # a mix into Chinese (en2zh + ja2zh): its sources; the build keeps the pairs whose target it asks for
    assert question_file_langs(EMO, "emotion_en2zhja2zh10k_question.json") == ("en", "ja")


def test_mix_file_given_as_a_file_and_in_a_folder(tmp_path: Path) -> None:
    path = write_mix(tmp_path / "ap_emotion")
    as_file = build_pairs(EMO, [path], ["zh", "es"], "en", per_lang=None)
    assert as_file.counts == {"zh": 4, "es": 4} and as_file.sources == {"zh": str(path), "es": str(path)}
    found = scan_sources(EMO, [tmp_path / "ap_emotion"])
    assert found.question_files == {"zh": [path], "es": [path]}
    in_folder = build_pairs(EMO, [tmp_path / "ap_emotion"], ["zh", "es"], "en", per_lang=None)
    assert in_folder.pairs == as_file.pairs
    assert {p.output for p in in_folder.pairs} == {make_pair(EMO, "en", "en", (t,), (t,), 0).output for t in EN}
    # one language of a mix alone
    assert build_pairs(EMO, [path], ["es"], "en", per_lang=2).counts == {"es": 2}


def test_single_language_files_come_before_a_mix(tmp_path: Path) -> None:
    folder = tmp_path / "emotion"
    mix = write_mix(folder)
    single = folder / "emotion_zh10k_train_question.json"
    single.write_text(json.dumps([r for r in mix_rows() if "Chinese" in r["input"]][:3], ensure_ascii=False),
                      encoding="utf-8")
    found = scan_sources(EMO, [folder])
    assert found.question_files == {"zh": [single, mix], "es": [mix]}
    r = build_pairs(EMO, [folder], ["zh", "es"], "en", per_lang=None)
    assert r.counts == {"zh": 3, "es": 4} and r.sources == {"zh": str(single), "es": str(mix)}


def test_cli_builds_from_a_mix_file(tmp_path: Path) -> None:
    path = write_mix(tmp_path / "ap_emotion")
    out = tmp_path / "qt" / "train.jsonl"
    assert main(["build", "--task", "emotion", "--data", str(path), "--sources", "zh,es", "--target", "en",
                 "--out", str(out)]) == 0
    rows = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 8 and {r["source_lang"] for r in rows} == {"zh", "es"}
    manifest = json.loads(manifest_path(out).read_text())
    assert manifest["counts"] == {"zh": 4, "es": 4} and manifest["sources"]["zh"] == str(path)


def test_a_mix_into_chinese_found_in_a_folder(tmp_path: Path) -> None:
    """emotion_en2zhja2zh10k_question.json (en and ja questions => zh) is found by its name in a folder and gives the
    pairs of the target asked for; a build into English finds no en/ja pairs in it."""
    folder = tmp_path / "ap_emotion"
    folder.mkdir()
    rows = [{"input": p.input, "answer": p.output}
            for i in range(len(EN)) for p in (make_pair(EMO, "en", "zh", (EN[i],), (ZH[i],), i),
                                              make_pair(EMO, "ja", "zh", (f"日本語 {i}",), (ZH[i],), i))]
    (folder / "emotion_en2zhja2zh10k_question.json").write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    assert build_pairs(EMO, [folder], ["en", "ja"], "zh", per_lang=None).counts == {"en": 4, "ja": 4}
    with pytest.raises(QtalignError, match="source language 'ja': no data"):
        build_pairs(EMO, [folder], ["ja"], "en", per_lang=None)
    write_mix(folder)  # zh/es => en beside it
    assert build_pairs(EMO, [folder], ["zh", "es"], "en", per_lang=None).counts == {"zh": 4, "es": 4}
