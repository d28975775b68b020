"""`kommo-agent eval retrieval` input errors, refused before anything starts."""

from __future__ import annotations

import json

from click.testing import CliRunner

from cli.main import main


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def test_translations_sharing_no_question_ids_are_refused(tmp_path):
    questions = _jsonl(tmp_path / "q.jsonl", [{"question": "Сколько стоит?", "passage_id": "p1", "id": "a1"}])
    passages = _jsonl(tmp_path / "p.jsonl", [{"passage_id": "p1", "text": "It costs 5 EUR."}])
    other = _jsonl(tmp_path / "t.jsonl", [{"question": "How much?", "passage_id": "p1", "id": "zz"}])
    result = CliRunner().invoke(main, ["eval", "retrieval", "--dataset", questions, "--passages", passages,
                                       "--translations", other])
    assert result.exit_code == 2
    assert "--translations: the translations file shares no question ids with the dataset" in result.output
    assert "Traceback" not in result.output
